import assert from 'node:assert/strict';
import { mkdtemp, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  afterAttempt,
  backoffMs,
  BACKOFF_CAP_MS,
  expiredBeforeAttempt,
  Outbox,
  type OutboxItem,
} from '../../src/services/dataexchange/outbox.js';
import { SenderQuota, senderRateLimiter } from '../../src/services/dataexchange/quota.js';
import { MAX_KEYS_PER_SENDER, ServiceState } from '../../src/services/dataexchange/state.js';
import { DataStore } from '../../src/services/dataexchange/store.js';

const item = (over: Partial<OutboxItem> = {}): OutboxItem => ({
  id: '00000000-0000-0000-0000-000000000001',
  target: '0:0000.0000.0005',
  type: 1,
  bytes: 3,
  createdAt: 0,
  expiresAt: 100_000,
  attempts: 0,
  nextAttemptAt: 0,
  ...over,
});

describe('data exchange quota and rate limit', () => {
  it('accounts bytes per sender against the limit', () => {
    const q = new SenderQuota(100);
    assert.ok(q.allows('a', 100));
    q.add('a', 60);
    assert.ok(!q.allows('a', 41));
    assert.ok(q.allows('b', 100));
    q.reset(new Map([['a', 10]]));
    assert.ok(q.allows('a', 90));
    assert.equal(q.totalBytes, 10);
  });

  it('limits messages per second per sender with an injected clock', () => {
    let now = 0;
    const r = senderRateLimiter(5);
    let allowed = 0;
    for (let i = 0; i < 20; i++) if (r.take('a', now)) allowed++;
    assert.equal(allowed, 10);
    assert.ok(r.take('b', now));
    now += 1000;
    allowed = 0;
    for (let i = 0; i < 20; i++) if (r.take('a', now)) allowed++;
    assert.equal(allowed, 5);
  });
});

describe('outbox state machine', () => {
  it('backs off exponentially up to the cap', () => {
    assert.deepEqual(
      [1, 2, 3, 4].map((n) => backoffMs(n)),
      [1000, 2000, 4000, 8000],
    );
    assert.equal(backoffMs(20), BACKOFF_CAP_MS);
  });

  it('deletes on ack, retries on failure, expires at the deadline', () => {
    assert.deepEqual(afterAttempt(item(), { ok: true }, 10), { action: 'delete' });
    const t = afterAttempt(item(), { ok: false, error: 'refused' }, 10);
    assert.equal(t.action, 'retry');
    if (t.action === 'retry') {
      assert.equal(t.item.attempts, 1);
      assert.equal(t.item.nextAttemptAt, 1010);
      assert.equal(t.item.lastError, 'refused');
    }
    const late = afterAttempt(item({ attempts: 5 }), { ok: false, error: 'down' }, 99_000);
    assert.equal(late.action, 'expire');
    assert.equal(expiredBeforeAttempt(item(), 50_000), undefined);
    assert.equal(expiredBeforeAttempt(item(), 100_000)?.action, 'expire');
  });

  it('persists items and moves expired ones aside with a reason', async () => {
    const home = await mkdtemp(join(tmpdir(), 'pilot-outbox-'));
    const box = new Outbox(home);
    const it1 = await box.enqueue(
      { target: '0:0000.0000.0005', type: 4, data: Buffer.from('abc'), filename: 'a.txt' },
      1000,
    );
    const listed = await box.list();
    assert.equal(listed.length, 1);
    assert.equal(listed[0]?.filename, 'a.txt');
    assert.equal((await box.data(it1.id)).toString(), 'abc');
    await box.expire(it1, 'expired after 3 attempts');
    assert.equal((await box.list()).length, 0);
    assert.deepEqual((await readdir(box.failedDir)).sort(), [`${it1.id}.data`, `${it1.id}.json`]);
  });
});

describe('data exchange store and seen keys', () => {
  it('never overwrites an item stored in the same millisecond', async () => {
    const home = await mkdtemp(join(tmpdir(), 'pilot-store-'));
    const store = new DataStore(home);
    const d = new Date(0);
    const one = await store.storeFile('a.txt', Buffer.from('1'), d);
    const two = await new DataStore(home).storeFile('a.txt', Buffer.from('2'), d);
    assert.notEqual(one.path, two.path);
    assert.equal((await readdir(store.received)).length, 2);
  });

  it('remembers a bounded set of keys per sender across restarts', async () => {
    const home = await mkdtemp(join(tmpdir(), 'pilot-seen-'));
    const s = await ServiceState.open(home);
    for (let i = 0; i <= MAX_KEYS_PER_SENDER; i++) s.markSeen('0:0000.0000.0001', `k${i}`);
    await s.save();
    const again = await ServiceState.open(home);
    assert.ok(again.hasSeen('0:0000.0000.0001', `k${MAX_KEYS_PER_SENDER}`));
    assert.ok(!again.hasSeen('0:0000.0000.0001', 'k0'));
    assert.ok(!again.hasSeen('0:0000.0000.0002', `k${MAX_KEYS_PER_SENDER}`));
  });
});
