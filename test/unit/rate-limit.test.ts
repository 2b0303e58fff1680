import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KeyedRateLimiter, TokenBucket } from '../../src/rate-limit.js';

describe('token bucket', () => {
  it('starts full, refills at its rate, never above its burst, and ignores a clock going back', () => {
    const b = new TokenBucket(10, 2);
    assert.deepEqual([b.take(0), b.take(0), b.take(0)], [true, true, false]);
    assert.equal(b.level(50), 0.25);
    assert.equal(b.take(100), true);
    assert.equal(b.take(50), false, 'an earlier time adds nothing');
    assert.equal(b.idle(10_000), true);
    assert.deepEqual([b.take(10_000), b.take(10_000), b.take(10_000)], [true, true, false]);
  });
});

describe('keyed rate limiter', () => {
  it('keeps a bucket per key and forgets refilled ones on reap', () => {
    const l = new KeyedRateLimiter<string>(1, 3);
    assert.deepEqual(
      [0, 0, 0, 0].map(() => l.take('a', 0)),
      [true, true, true, false],
    );
    assert.equal(l.take('b', 0), true);
    assert.equal(l.level('a', 0), 0);
    assert.equal(l.level('unknown', 0), 1);
    l.reap(1000);
    assert.equal(l.size, 1, 'b has refilled, a has not');
    l.reap(3000);
    assert.equal(l.size, 0);
  });

  it('refuse: when full, a new key is refused unless a tracked bucket has refilled', () => {
    const l = new KeyedRateLimiter<number>(1, 1, 2, 'refuse');
    assert.equal(l.take(1, 0), true);
    assert.equal(l.take(2, 500), true);
    assert.equal(l.take(3, 500), false);
    assert.equal(l.size, 2);
    assert.equal(l.take(3, 1000), true, 'key 1 refilled and was forgotten');
    assert.equal(l.level(1, 1000), 1);
    assert.equal(l.level(2, 1000), 0.5);
  });

  it('evict-oldest: when full, the least recently used key is forgotten', () => {
    const l = new KeyedRateLimiter<string>(1, 1, 2, 'evict-oldest');
    assert.equal(l.take('a', 0), true);
    assert.equal(l.take('b', 0), true);
    assert.equal(l.take('a', 0), false, 'a is now the most recently used');
    assert.equal(l.take('c', 0), true, 'b is forgotten');
    assert.equal(l.size, 2);
    assert.equal(l.level('b', 0), 1);
    assert.equal(l.level('a', 0), 0);
  });

  it('clear: when full and nothing has refilled, every key is forgotten', () => {
    const l = new KeyedRateLimiter<string>(1, 1, 2, 'clear');
    l.take('a', 0);
    l.take('b', 0);
    assert.equal(l.take('c', 0), true);
    assert.equal(l.size, 1);
    assert.equal(l.take('a', 0), true, 'a starts again with a full bucket');
  });
});
