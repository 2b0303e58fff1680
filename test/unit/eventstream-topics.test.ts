import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  DROPPED_TOPIC,
  isReservedTopic,
  parsePattern,
  prefixKeys,
  topicMatches,
} from '../../src/protocol/event-topics.js';

describe('event stream topic patterns', () => {
  it('"*" matches every topic, including reserved ones', () => {
    for (const t of ['', 'a', 'metrics.cpu', '*', DROPPED_TOPIC]) assert.equal(topicMatches('*', t), true);
  });

  it('exact topics match only themselves', () => {
    assert.equal(topicMatches('status', 'status'), true);
    assert.equal(topicMatches('status', 'status.x'), false);
    assert.equal(topicMatches('status', 'Status'), false);
    assert.equal(topicMatches('', ''), true);
  });

  it('"prefix.*" matches every topic under "prefix." but not "prefix" itself', () => {
    assert.equal(topicMatches('metrics.*', 'metrics.cpu'), true);
    assert.equal(topicMatches('metrics.*', 'metrics.cpu.load'), true);
    assert.equal(topicMatches('metrics.*', 'metrics.*'), true);
    assert.equal(topicMatches('metrics.*', 'metrics'), false);
    assert.equal(topicMatches('metrics.*', 'metricsx.cpu'), false);
    assert.equal(topicMatches('a.b.*', 'a.b.c'), true);
    assert.equal(topicMatches('a.b.*', 'a.c'), false);
  });

  it('".*" alone and "x*" are exact topics, not wildcards', () => {
    assert.deepEqual(parsePattern('.*'), { kind: 'exact', topic: '.*' });
    assert.deepEqual(parsePattern('metrics*'), { kind: 'exact', topic: 'metrics*' });
    assert.equal(topicMatches('metrics*', 'metricsx'), false);
    assert.deepEqual(parsePattern('*'), { kind: 'all' });
    assert.deepEqual(parsePattern('a.*'), { kind: 'prefix', prefix: 'a.' });
  });

  it('lists every dot prefix of a topic, the index keys for prefix subscriptions', () => {
    assert.deepEqual(prefixKeys('a.b.c'), ['a.', 'a.b.']);
    assert.deepEqual(prefixKeys('abc'), []);
    assert.deepEqual(prefixKeys('a..'), ['a.', 'a..']);
    assert.deepEqual(prefixKeys('.x'), ['.']);
  });

  it('keeps _pilot. topics for the broker', () => {
    assert.equal(isReservedTopic(DROPPED_TOPIC), true);
    assert.equal(isReservedTopic('_pilot.anything'), true);
    assert.equal(isReservedTopic('_pilotx'), false);
    assert.equal(isReservedTopic('pilot.x'), false);
  });
});
