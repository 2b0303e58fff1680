import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PgBatch } from '../../src/registry/postgres-batch.js';
import { PostgresNodeView } from '../../src/registry/postgres-node-view.js';
import type { NodeRecord } from '../../src/registry/store.js';

const node = (id: number, extra: Partial<NodeRecord> = {}): NodeRecord => ({
  id,
  publicKey: `key${id}`,
  owner: '',
  realAddr: '127.0.0.1:1',
  isPublic: false,
  hostname: '',
  tags: [],
  taskExec: false,
  poloScore: 0,
  registered: true,
  signsBody: true,
  ...extra,
});

describe('PgBatch', () => {
  it('sends the calls of one turn together and the next ones after the running batch', async () => {
    const batches: number[][] = [];
    let release: (() => void) | undefined;
    const batch = new PgBatch<number, number>(async (items) => {
      batches.push(items);
      if (batches.length === 1) await new Promise<void>((r) => (release = r));
      return items.map((i) => i * 10);
    });
    const first = [batch.add(1), batch.add(2), batch.add(3)];
    await new Promise((r) => setImmediate(r));
    const second = [batch.add(4), batch.add(5)];
    await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(batches, [[1, 2, 3]], 'the second group waits for the running statement');
    release?.();
    assert.deepEqual(await Promise.all([...first, ...second]), [10, 20, 30, 40, 50]);
    assert.deepEqual(batches, [
      [1, 2, 3],
      [4, 5],
    ]);
  });

  it('keeps items of one key in separate batches, in order, and fails a whole batch together', async () => {
    const batches: string[][] = [];
    const batch = new PgBatch<string, string>(
      async (items) => {
        batches.push(items);
        if (items.includes('bad')) throw new Error('statement failed');
        return items;
      },
      (item) => item.slice(0, 1),
    );
    const results = await Promise.allSettled([batch.add('a1'), batch.add('a2'), batch.add('b1'), batch.add('bad')]);
    assert.deepEqual(batches, [
      ['a1', 'b1'],
      ['a2', 'bad'],
    ]);
    assert.deepEqual(
      results.map((r) => r.status),
      ['fulfilled', 'rejected', 'fulfilled', 'rejected'],
    );
  });
});

describe('PostgresNodeView', () => {
  it('serves nothing until the listening connection is up, and forgets everything when it goes down', () => {
    let now = 1_000_000;
    const view = new PostgresNodeView(() => now);
    view.put(node(1, { lastSeen: now }), 5, view.ticket());
    view.lease(Number.POSITIVE_INFINITY);
    assert.equal(view.get(1), undefined);
    view.setLive(true);
    view.lease(Number.POSITIVE_INFINITY);
    view.put(node(1, { lastSeen: now, hostname: 'one' }), 5, view.ticket());
    assert.equal(view.get(1)?.node.id, 1);
    assert.equal(view.byKey('key1')?.node.id, 1);
    assert.equal(view.byHostname('one')?.node.id, 1);
    view.setLive(false);
    assert.equal(view.get(1), undefined);
    view.setLive(true);
    view.lease(Number.POSITIVE_INFINITY);
    assert.equal(view.get(1), undefined, 'announcements may have been missed meanwhile');
    now += 1;
  });

  it('serves copies only while its lease holds; a new listening connection needs a new lease', () => {
    const now = 1_000_000;
    let clock = 0;
    const view = new PostgresNodeView(
      () => now,
      () => clock,
    );
    view.setLive(true);
    view.put(node(1, { lastSeen: now }), 5, view.ticket());
    assert.equal(view.get(1), undefined, 'no lease yet');
    view.lease(1000);
    assert.equal(view.get(1)?.node.id, 1);
    clock = 1000;
    assert.equal(view.get(1), undefined, 'the lease ran out');
    assert.equal(view.byKey('key1'), undefined);
    view.lease(2000);
    assert.equal(view.get(1)?.node.id, 1, 'renewed');
    view.setLive(false);
    view.setLive(true);
    view.put(node(1, { lastSeen: now }), 6, view.ticket());
    assert.equal(view.get(1), undefined, 'the lease of the old connection does not count');
    view.lease(3000);
    assert.equal(view.get(1)?.version, 6);
  });

  it('knows which liveness times its copies carry (and so are stored)', () => {
    const now = 1_000_000;
    const view = new PostgresNodeView(() => now);
    view.setLive(true);
    view.put(node(1, { lastSeen: now, lastProven: now - 10 }), 5, view.ticket());
    assert.ok(view.covers(1, now, undefined));
    assert.ok(view.covers(1, now - 1, now - 10));
    assert.ok(!view.covers(1, now + 1, undefined));
    assert.ok(!view.covers(1, undefined, now));
    assert.ok(!view.covers(2, 0, undefined), 'no copy: not known');
    view.times(1, now + 5, now + 5);
    assert.ok(view.covers(1, now + 5, now + 5));
  });

  it('drops a copy older than an announced version and refuses a read that began before it', () => {
    const now = 1_000_000;
    const view = new PostgresNodeView(() => now);
    view.setLive(true);
    view.lease(Number.POSITIVE_INFINITY);
    view.put(node(1, { lastSeen: now, hostname: 'old' }), 5, view.ticket());
    view.announced(1, 5);
    assert.equal(view.get(1)?.node.hostname, 'old', "its own version's announcement keeps it");
    const slowRead = view.ticket();
    view.announced(1, 6);
    assert.equal(view.get(1), undefined);
    assert.equal(view.byHostname('old'), undefined);
    view.put(node(1, { lastSeen: now, hostname: 'old' }), 5, slowRead);
    assert.equal(view.get(1), undefined, 'an answer older than the announcement is not kept');
    view.put(node(1, { lastSeen: now, hostname: 'new' }), 6, view.ticket());
    assert.equal(view.byHostname('new')?.node.id, 1);
  });

  it('forgets a node that came back, and reads again one whose liveness times are old', () => {
    let now = 1_000_000;
    const view = new PostgresNodeView(() => now);
    view.setLive(true);
    view.lease(Number.POSITIVE_INFINITY);
    const before = view.ticket();
    view.put(node(1, { lastSeen: now }), 5, view.ticket());
    view.forget(1);
    assert.equal(view.get(1), undefined);
    view.put(node(1, { lastSeen: now }), 5, before);
    assert.equal(view.get(1), undefined, 'a read from before the comeback is not kept');
    now += 1;
    view.put(node(1, { lastSeen: now }), 5, view.ticket());
    assert.equal(view.get(1)?.node.id, 1);
    now += 61_000;
    assert.equal(view.get(1), undefined, 'times older than a minute: read again');
    view.times(1, now, undefined);
    assert.equal(view.get(1)?.node.lastSeen, now, 'times this process wrote refresh the copy');
  });
});
