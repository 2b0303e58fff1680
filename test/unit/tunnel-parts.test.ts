import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatEndpoint, parseEndpoint, parseListenAddress } from '../../src/tunnel/endpoint.js';
import { RegistryKeys } from '../../src/registry-keys.js';
import { TokenBucket } from '../../src/rate-limit.js';
import { IntervalLimiter } from '../../src/tunnel/limits.js';
import { BoundedQueues } from '../../src/tunnel/queues.js';

describe('tunnel endpoints', () => {
  it('parses listen addresses', () => {
    assert.deepEqual(parseListenAddress(':0'), { host: '0.0.0.0', port: 0, family: 4 });
    assert.deepEqual(parseListenAddress('127.0.0.1:4000'), { host: '127.0.0.1', port: 4000, family: 4 });
    assert.deepEqual(parseListenAddress('[::1]:0'), { host: '::1', port: 0, family: 6 });
    for (const bad of ['', '4000', 'example.com:1', '1.2.3.4:70000', '::1:0', '[::1]0']) {
      assert.throws(() => parseListenAddress(bad), /listen/, bad);
    }
  });

  it('parses and formats peer endpoints', () => {
    assert.deepEqual(parseEndpoint('10.0.0.1:4000'), { host: '10.0.0.1', port: 4000, family: 4 });
    assert.deepEqual(parseEndpoint('[::ffff:10.0.0.1]:4000'), { host: '10.0.0.1', port: 4000, family: 4 });
    assert.equal(formatEndpoint({ host: 'fe80::1', port: 9 }), '[fe80::1]:9');
    for (const bad of ['10.0.0.1:0', 'host:1', '10.0.0.1', '[::1]', '1.2.3.4:-1'])
      assert.equal(parseEndpoint(bad), undefined, bad);
  });
});

describe('tunnel limits and queues', () => {
  it('limits per key and in total', () => {
    const limiter = new IntervalLimiter<number>(100, 2);
    assert.equal(limiter.allow(1, 0), true);
    assert.equal(limiter.allow(1, 50), false);
    assert.equal(limiter.allow(1, 100), true);
    assert.equal(limiter.since(1, 130), 30);
    limiter.allow(2, 0);
    limiter.allow(3, 0);
    assert.equal(limiter.since(1, 200), Infinity, 'oldest key forgotten at the cap');
    const bucket = new TokenBucket(10, 2);
    assert.deepEqual([bucket.take(0), bucket.take(0), bucket.take(0), bucket.take(100)], [true, true, false, true]);
  });

  it('bounds queues per node, in nodes and in age', () => {
    const q = new BoundedQueues<number>(2, 2, 1000);
    assert.equal(q.add(1, 1, 0), 'queued');
    assert.equal(q.add(1, 2, 0), 'queued');
    assert.equal(q.add(1, 3, 0), 'dropped_oldest');
    assert.equal(q.add(2, 1, 0), 'queued');
    assert.equal(q.add(3, 1, 0), 'refused');
    assert.deepEqual(q.take(1), [2, 3]);
    assert.equal(q.expire(999), 0);
    assert.equal(q.expire(1000), 1);
    assert.deepEqual(q.nodes(), []);
  });
});

describe('tunnel key cache', () => {
  it('caches, shares concurrent look-ups, and rate-limits forced re-fetches', async () => {
    let now = 0;
    let calls = 0;
    const keys = new Map<number, Uint8Array>([[1, new Uint8Array(32).fill(1)]]);
    const cache = new RegistryKeys(
      async (id) => {
        calls += 1;
        return keys.get(id);
      },
      { now: () => now, refetchIntervalMs: 1000, negativeTtlMs: 500 },
    );
    const [x, y] = await Promise.all([cache.get(1), cache.get(1)]);
    assert.equal(x.status, 'ok');
    assert.equal(y.status, 'ok');
    assert.equal(calls, 1);
    await cache.get(1, true);
    assert.equal(calls, 1, 're-fetch too soon');
    keys.set(1, new Uint8Array(32).fill(2));
    now = 1000;
    const refreshed = await cache.get(1, true);
    assert.equal(calls, 2);
    assert.deepEqual(refreshed.status === 'ok' ? refreshed.key[0] : -1, 2);
    assert.equal((await cache.get(5)).status, 'unknown');
    assert.equal((await cache.get(5)).status, 'unknown');
    assert.equal(calls, 3, 'negative answer cached');
    now = 1600;
    await cache.get(5);
    assert.equal(calls, 4, 'negative answer expired');
  });

  it('refuses look-ups beyond the concurrency bound and survives a failing registry', async () => {
    const never = new Promise<Uint8Array | undefined>(() => undefined);
    const busy = new RegistryKeys(() => never, { maxInFlight: 1 });
    void busy.get(1);
    assert.equal((await busy.get(2)).status, 'busy');
    const failing = new RegistryKeys(async () => {
      throw new Error('registry down');
    });
    assert.equal((await failing.get(1)).status, 'unreachable');
    const wrongSize = new RegistryKeys(async () => new Uint8Array(5));
    assert.equal((await wrongSize.get(1)).status, 'unknown');
  });
});
