import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SqliteRegistryStore } from '../../src/registry/sqlite-store.js';

const key = (n: number): string => Buffer.alloc(32, n).toString('base64');

describe('SqliteRegistryStore', () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pilot-store-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('hands out the last u32 id and then refuses to create nodes', () => {
    const store = new SqliteRegistryStore(':memory:');
    try {
      store.replaceState({ ...store.exportState(), nextNodeId: 0xffffffff });
      assert.equal(store.createNode({ publicKey: key(1), owner: '', realAddr: '' }).id, 0xffffffff);
      assert.throws(() => store.createNode({ publicKey: key(2), owner: '', realAddr: '' }), /exhausted/);
      assert.equal(store.getNodeByKey(key(2)), undefined, 'nothing half-created');
    } finally {
      store.close();
    }
  });

  it('assigns ids from 1, never reuses them, and keeps everything across reopen', () => {
    const path = join(dir, 'a.db');
    let store = new SqliteRegistryStore(path);
    const a = store.createNode({ publicKey: key(1), owner: 'alice', realAddr: '1.2.3.4:4000' });
    const b = store.createNode({ publicKey: key(2), owner: '', realAddr: '1.2.3.5:4000' });
    assert.equal(a.id, 1);
    assert.equal(b.id, 2);
    assert.deepEqual(a, {
      id: 1,
      publicKey: key(1),
      owner: 'alice',
      realAddr: '1.2.3.4:4000',
      isPublic: false,
      hostname: '',
      tags: [],
      taskExec: false,
      poloScore: 0,
      registered: true,
      signsBody: false,
    });
    store.updateNode(1, { hostname: 'alice', tags: ['ml', 'gpu'], isPublic: true, taskExec: true, poloScore: 3 });
    store.updateNode(2, { registered: false });
    store.addTrustClaim(1, 2, 10);
    store.close();

    store = new SqliteRegistryStore(path);
    assert.equal(store.getNodeByKey(key(1))?.hostname, 'alice');
    assert.deepEqual(store.getNode(1)?.tags, ['ml', 'gpu']);
    assert.equal(store.getNodeByOwner('alice')?.id, 1);
    assert.equal(store.getNodeByOwner(''), undefined);
    assert.equal(store.getNodeByHostname('alice')?.id, 1);
    assert.deepEqual(
      store.listRegistered().map((n) => n.id),
      [1],
    );
    assert.ok(store.hasTrustClaim(1, 2));
    assert.ok(!store.hasTrustClaim(2, 1));
    assert.equal(store.createNode({ publicKey: key(3), owner: '', realAddr: '' }).id, 3);
    store.close();
  });

  it('enforces unique keys and hostnames', () => {
    const store = new SqliteRegistryStore(':memory:');
    store.createNode({ publicKey: key(1), owner: '', realAddr: '' });
    store.createNode({ publicKey: key(2), owner: '', realAddr: '' });
    assert.throws(() => store.createNode({ publicKey: key(1), owner: '', realAddr: '' }));
    store.updateNode(1, { hostname: 'x' });
    assert.throws(() => store.updateNode(2, { hostname: 'x' }));
    store.updateNode(1, { hostname: '' });
    store.updateNode(2, { hostname: 'x' });
    assert.equal(store.getNodeByHostname('x')?.id, 2);
    assert.throws(() => store.updateNode(99, { isPublic: true }), RangeError);
    assert.equal(
      store.createNode({ publicKey: key(4), owner: '', realAddr: '' }).id,
      3,
      'a failed insert does not burn an id',
    );
    store.close();
  });

  it('keeps trust as directed claims and removes pairs in both directions', () => {
    const store = new SqliteRegistryStore(':memory:');
    store.addTrustClaim(1, 2, 0);
    store.addTrustClaim(1, 2, 0);
    store.addTrustClaim(2, 1, 0);
    assert.equal(store.removeTrustPair(2, 1), 2);
    assert.equal(store.removeTrustPair(1, 2), 0);
    store.close();
  });

  it('handshake inboxes: one pending request per pair, bounded, delivered once, expiring', () => {
    const store = new SqliteRegistryStore(':memory:');
    assert.equal(
      store.addHandshakeRequest({ fromNodeId: 1, toNodeId: 9, justification: 'a', createdAt: 100 }, 2),
      'added',
    );
    assert.equal(
      store.addHandshakeRequest({ fromNodeId: 2, toNodeId: 9, justification: 'b', createdAt: 200 }, 2),
      'added',
    );
    assert.equal(
      store.addHandshakeRequest({ fromNodeId: 3, toNodeId: 9, justification: 'c', createdAt: 300 }, 2),
      'full',
    );
    assert.deepEqual(
      store.deliverHandshakeRequests(9).map((r) => r.fromNodeId),
      [1, 2],
    );
    assert.deepEqual(store.deliverHandshakeRequests(9), []);
    assert.equal(
      store.addHandshakeRequest({ fromNodeId: 1, toNodeId: 9, justification: 'again', createdAt: 400 }, 2),
      'refreshed',
    );
    assert.deepEqual(
      store.deliverHandshakeRequests(9).map((r) => r.justification),
      ['again'],
    );
    assert.equal(store.takeHandshakeRequest(1, 9)?.justification, 'again');
    assert.equal(store.takeHandshakeRequest(1, 9), undefined);

    for (let i = 0; i < 5; i++)
      store.addHandshakeResponse({ fromNodeId: 10 + i, toNodeId: 1, accept: i % 2 === 0, createdAt: 1000 + i }, 3);
    const responses = store.takeHandshakeResponses(1);
    assert.deepEqual(
      responses.map((r) => r.fromNodeId),
      [12, 13, 14],
      'oldest dropped beyond the bound',
    );
    assert.equal(responses[0]?.accept, true);
    assert.deepEqual(store.takeHandshakeResponses(1), []);

    store.addHandshakeResponse({ fromNodeId: 5, toNodeId: 1, accept: true, createdAt: 50 }, 3);
    assert.equal(store.pruneHandshakes(250), 2, 'the request from 2 and the old response');
    store.close();
  });

  it('beacons expire', () => {
    const store = new SqliteRegistryStore(':memory:');
    store.upsertBeacon({ id: 1, addr: 'a:1', expiresAt: 100 });
    store.upsertBeacon({ id: 2, addr: 'b:1', expiresAt: 200 });
    store.upsertBeacon({ id: 1, addr: 'a:2', expiresAt: 300 });
    assert.deepEqual(store.listBeacons(150), [
      { id: 1, addr: 'a:2', expiresAt: 300 },
      { id: 2, addr: 'b:1', expiresAt: 200 },
    ]);
    assert.equal(store.pruneBeacons(250), 1);
    assert.deepEqual(
      store.listBeacons(0).map((b) => b.id),
      [1],
    );
    store.close();
  });
});
