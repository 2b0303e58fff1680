import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import { Identity } from '../../src/crypto/identity.js';
import { computeStats, type StatsInput } from '../../src/registry/stats.js';
import { SqliteRegistryStore } from '../../src/registry/sqlite-store.js';
import type { NodePatch } from '../../src/registry/store.js';

const addr = (id: number): string => `0:0000.0000.${id.toString(16).toUpperCase().padStart(4, '0')}`;

describe('registry dashboard statistics', () => {
  let store: SqliteRegistryStore;
  const node = (patch: NodePatch = {}): number => {
    const id = store.createNode({
      publicKey: Identity.generate().publicKeyBase64,
      owner: '',
      realAddr: '127.0.0.1:4000',
    }).id;
    store.updateNode(id, patch);
    return id;
  };
  const trust = (a: number, b: number): void => {
    store.addTrustClaim(a, b, 0);
    store.addTrustClaim(b, a, 0);
  };
  const input = (online: readonly number[], extra: Partial<StatsInput> = {}): StatsInput => ({
    nodes: store.listRegistered(),
    trustPairs: store.listTrustPairs(),
    isOnline: (id) => online.includes(id),
    totalRequests: 0,
    uptimeMs: 0,
    ...extra,
  });

  beforeEach(() => {
    store = new SqliteRegistryStore(':memory:');
  });

  it('lists only public nodes and public-to-public edges, but counts everyone', () => {
    const pubA = node({ isPublic: true, tags: ['ml', 'gpu'], taskExec: true, poloScore: 7 });
    const priv = node({ tags: ['secret-project', 'ml'], taskExec: true });
    const pubB = node({ isPublic: true, tags: ['gpu'] });
    trust(pubA, pubB);
    trust(pubA, priv);
    trust(priv, pubB);

    const stats = computeStats(input([pubA, priv], { totalRequests: 42, uptimeMs: 61_999 }));

    assert.equal(stats.total_nodes, 3);
    assert.equal(stats.active_nodes, 2);
    assert.equal(stats.total_trust_links, 3);
    assert.equal(stats.total_requests, 42);
    assert.equal(stats.unique_tags, 3, 'ml, gpu and the private node’s tag');
    assert.equal(stats.task_executors, 2);
    assert.equal(stats.uptime_secs, 61);
    assert.deepEqual(stats.networks, [{ id: 0, name: 'backbone', members: 3, online_members: 2 }]);
    assert.deepEqual(stats.nodes, [
      {
        address: addr(pubA),
        tags: ['ml', 'gpu'],
        online: true,
        trust_links: 2,
        task_exec: true,
        polo_score: 7,
        hostname: '',
      },
      {
        address: addr(pubB),
        tags: ['gpu'],
        online: false,
        trust_links: 2,
        task_exec: false,
        polo_score: 0,
        hostname: '',
      },
    ]);
    assert.deepEqual(stats.edges, [{ source: addr(pubA), target: addr(pubB) }]);
    const json = JSON.stringify(stats);
    assert.ok(!json.includes(addr(priv)), 'the private node appears nowhere');
    assert.ok(!json.includes('secret-project'));
  });

  it('keeps the reference’s field order', () => {
    const stats = computeStats(input([]));
    assert.deepEqual(Object.keys(stats), [
      'total_nodes',
      'active_nodes',
      'total_trust_links',
      'total_requests',
      'unique_tags',
      'task_executors',
      'networks',
      'nodes',
      'edges',
      'uptime_secs',
    ]);
    assert.deepEqual(stats.nodes, []);
    assert.deepEqual(stats.edges, []);
  });

  it('sorts nodes and edges by address', () => {
    const ids = Array.from({ length: 20 }, () => node({ isPublic: true }));
    trust(ids[19] as number, ids[3] as number);
    trust(ids[15] as number, ids[2] as number);
    const shuffled = [...store.listRegistered()].reverse();
    const stats = computeStats({ ...input([]), nodes: shuffled, trustPairs: [...store.listTrustPairs()].reverse() });
    assert.deepEqual(
      stats.nodes.map((n) => n.address),
      ids.map(addr),
    );
    assert.deepEqual(stats.edges, [
      { source: addr(ids[2] as number), target: addr(ids[15] as number) },
      { source: addr(ids[3] as number), target: addr(ids[19] as number) },
    ]);
  });

  it('counts only mutual claims between registered nodes as trust links', () => {
    const a = node({ isPublic: true });
    const b = node({ isPublic: true });
    const gone = node({ isPublic: true });
    store.addTrustClaim(a, b, 0);
    assert.equal(computeStats(input([])).total_trust_links, 0, 'a one-sided claim is not a link');
    store.addTrustClaim(b, a, 0);
    trust(a, gone);
    store.updateNode(gone, { registered: false });
    const stats = computeStats(input([]));
    assert.equal(stats.total_nodes, 2);
    assert.equal(stats.total_trust_links, 1);
    assert.deepEqual(
      stats.nodes.map((n) => n.trust_links),
      [1, 1],
    );
    assert.deepEqual(store.listTrustPairs(), [
      [a, b],
      [a, gone],
    ]);
  });
});
