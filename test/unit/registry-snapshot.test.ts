import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PilotError } from '../../src/errors.js';
import type { JsonObject } from '../../src/protocol/json.js';
import { importJsonStore } from '../../src/registry/import-json.js';
import { exportSnapshot } from '../../src/registry/snapshot-export.js';
import { parseSnapshot } from '../../src/registry/snapshot-import.js';
import { embeddedStore } from '../../src/registry/embedded-store.js';
import { SqliteRegistryStore } from '../../src/registry/sqlite-store.js';
import type { StoreContents } from '../../src/registry/store.js';

const FIXTURE = join(import.meta.dirname, '../fixtures/go-registry-store.json');
const key = (n: number): string => Buffer.alloc(32, n).toString('base64');
const TASK = '0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9';
const NOW = Date.parse('2025-06-01T00:00:00Z');

/** Claims compared without their creation times, which the format does not carry. */
const comparable = (c: StoreContents): object => ({ ...c, trustClaims: c.trustClaims.map((t) => `${t.from}:${t.to}`) });

/** A store exercising every part of the state. */
function populatedStore(): SqliteRegistryStore {
  const store = new SqliteRegistryStore(':memory:');
  store.createNode({ publicKey: key(1), owner: 'alice', realAddr: '198.51.100.1:4000' });
  store.createNode({ publicKey: key(2), owner: '', realAddr: '[2001:db8::2]:4000' });
  store.createNode({ publicKey: key(3), owner: 'carol', realAddr: '198.51.100.3:4000' });
  store.updateNode(1, { hostname: 'alpha', tags: ['gpu', 'ml'], isPublic: true, taskExec: true, poloScore: 7 });
  store.updateNode(2, { hostname: 'beta', poloScore: -2, signsBody: true });
  store.updateNode(3, { registered: false, poloScore: 4 });
  store.addTrustClaim(1, 2, 10);
  store.addTrustClaim(2, 1, 11);
  store.addTrustClaim(1, 3, 12);
  store.addHandshakeRequest({ fromNodeId: 2, toNodeId: 1, justification: 'hello <&>', createdAt: NOW - 5000 }, 100);
  store.addHandshakeRequest({ fromNodeId: 3, toNodeId: 1, justification: 'seen already', createdAt: NOW - 4000 }, 100);
  store.deliverHandshakeRequests(1);
  store.addHandshakeRequest({ fromNodeId: 2, toNodeId: 1, justification: 'again', createdAt: NOW - 3000 }, 100);
  store.addHandshakeResponse({ fromNodeId: 1, toNodeId: 2, accept: true, createdAt: NOW - 2000 }, 100);
  store.addHandshakeResponse({ fromNodeId: 3, toNodeId: 2, accept: false, createdAt: NOW - 1000 }, 100);
  store.applyTaskEvidence({
    taskId: TASK,
    kind: 'receipt',
    submitter: 2,
    executor: 1,
    submitterDelta: -1,
    executorDelta: 3,
    at: NOW - 900,
  });
  return store;
}

/** What `-import-json` and a standby do: validate, then replace in one transaction. */
function importInto(store: SqliteRegistryStore, snapshot: unknown): void {
  store.replaceState(parseSnapshot(snapshot, NOW).contents);
}

describe('registry snapshot (§5.9 JSON)', () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pilot-snapshot-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('exports the reference shape and imports it back unchanged', () => {
    const source = populatedStore();
    const state = source.exportState();
    const snapshot = exportSnapshot(state, {
      now: NOW,
      lastSeen: (id) => (id === 1 ? NOW - 10_000 : undefined),
      beacons: [{ id: 9, addr: '192.0.2.9:9001', expiresAt: NOW + 30_000 }],
    });

    assert.deepEqual(Object.keys(snapshot.nodes as JsonObject), ['1', '2'], 'deregistered nodes are not in "nodes"');
    assert.deepEqual((snapshot.nodes as JsonObject)['1'], {
      id: 1,
      owner: 'alice',
      public_key: key(1),
      real_addr: '198.51.100.1:4000',
      networks: [0],
      public: true,
      last_seen: '2025-05-31T23:59:50Z',
      hostname: 'alpha',
      tags: ['gpu', 'ml'],
      polo_score: 10,
      task_exec: true,
    });
    assert.deepEqual(
      (snapshot.nodes as JsonObject)['2'],
      {
        id: 2,
        public_key: key(2),
        real_addr: '[2001:db8::2]:4000',
        networks: [0],
        hostname: 'beta',
        polo_score: -3,
        pilot_signs_body: true,
      },
      'scores include the task evidence',
    );
    assert.deepEqual(snapshot.trust_pairs, ['1:2'], 'only the pair claimed both ways');
    assert.deepEqual(snapshot.pilot_trust_claims, ['1:2', '1:3', '2:1']);
    assert.deepEqual(snapshot.pub_key_idx, { [key(1)]: 1, [key(2)]: 2, [key(3)]: 3 });
    const backbone = (snapshot.networks as JsonObject)['0'] as JsonObject;
    assert.deepEqual(
      { ...backbone, created: undefined },
      { id: 0, name: 'backbone', join_rule: 'open', members: [1, 2], created: undefined },
    );
    assert.equal(Date.parse(backbone.created as string), state.backboneCreatedAt);
    assert.deepEqual(snapshot.handshake_inbox, {
      '1': [{ from_node_id: 2, justification: 'again', timestamp: '2025-05-31T23:59:57Z' }],
    });
    assert.deepEqual(snapshot.pilot_handshake_delivered, {
      '1': [{ from_node_id: 3, justification: 'seen already', timestamp: '2025-05-31T23:59:56Z' }],
    });
    assert.deepEqual(snapshot.handshake_responses, {
      '2': [
        { from_node_id: 1, accept: true, timestamp: '2025-05-31T23:59:58Z' },
        { from_node_id: 3, accept: false, timestamp: '2025-05-31T23:59:59Z' },
      ],
    });
    assert.deepEqual(snapshot.pilot_beacons, [{ id: 9, addr: '192.0.2.9:9001', ttl_ms: 30_000 }]);

    const copy = new SqliteRegistryStore(':memory:');
    const parsed = parseSnapshot(JSON.parse(JSON.stringify(snapshot)), NOW);
    copy.replaceState(parsed.contents);
    assert.deepEqual(comparable(copy.exportState()), comparable(state));
    assert.deepEqual([...parsed.lastSeen], [[1, NOW - 10_000]]);
    assert.deepEqual(parsed.beacons, [{ id: 9, addr: '192.0.2.9:9001', expiresAt: NOW + 30_000 }]);

    // The copy works as a registry store: lookups, the id counter, replayed evidence refused.
    assert.equal(copy.getNodeByHostname('beta')?.id, 2);
    assert.equal(copy.getNodeByKey(key(3))?.registered, false);
    assert.equal(copy.createNode({ publicKey: key(4), owner: '', realAddr: '' }).id, 4);
    assert.equal(
      copy.applyTaskEvidence({
        taskId: TASK,
        kind: 'receipt',
        submitter: 2,
        executor: 1,
        submitterDelta: -1,
        executorDelta: 3,
        at: NOW,
      }),
      false,
    );
    assert.equal(copy.deliverHandshakeRequests(1).length, 1, 'a delivered request stays delivered');
    source.close();
    copy.close();
  });

  it('imports a Go registry store file', async () => {
    const store = new SqliteRegistryStore(':memory:');
    const summary = await importJsonStore(embeddedStore(store), FIXTURE, NOW);
    assert.deepEqual(summary, { nodes: 4, registered: 3, trustClaims: 2, handshakeRequests: 1, droppedNetworks: 0 });
    const alpha = store.getNode(1);
    assert.deepEqual(alpha, {
      id: 1,
      publicKey: key(1),
      owner: 'alice@example.com',
      realAddr: '198.51.100.4:4000',
      isPublic: true,
      hostname: 'alpha',
      tags: ['gpu', 'ml'],
      taskExec: true,
      poloScore: 12,
      registered: true,
      signsBody: false,
    });
    assert.equal(store.getNode(3)?.registered, false, 'a key only in pub_key_idx keeps its id reserved');
    assert.equal(store.getNodeByKey(key(3))?.id, 3);
    assert.ok(store.hasTrustClaim(1, 2) && store.hasTrustClaim(2, 1), 'a reference pair is mutual');
    assert.deepEqual(
      store.deliverHandshakeRequests(1).map((r) => [r.fromNodeId, r.justification, r.createdAt]),
      [[4, 'please let me in', Date.parse('2025-03-01T11:59:00.500Z')]],
    );
    assert.deepEqual(
      store.takeHandshakeResponses(4).map((r) => [r.fromNodeId, r.accept]),
      [[2, false]],
    );
    assert.equal(
      store.createNode({ publicKey: Buffer.alloc(32, 5).toString('base64'), owner: '', realAddr: '' }).id,
      5,
      'next_node carried over',
    );
    assert.equal(store.exportState().backboneCreatedAt, Date.parse('2025-01-01T00:00:00Z'));

    const parsed = parseSnapshot(JSON.parse(await readFile(FIXTURE, 'utf8')), NOW);
    assert.equal(parsed.lastSeen.get(1), Date.parse('2025-03-01T12:00:00.123Z'), 'nanoseconds are cut to milliseconds');
    assert.equal(parsed.lastSeen.get(2), Date.parse('2025-03-01T12:00:05Z'), 'zone offsets are applied');

    await assert.rejects(
      importJsonStore(embeddedStore(store), FIXTURE, NOW),
      (err: unknown) =>
        err instanceof PilotError && err.code === 'already_exists' && /already holds 5 node/.test(err.message),
    );
    store.close();
  });

  it('rejects a malformed snapshot whole and leaves the store as it was', async () => {
    const store = populatedStore();
    const before = store.exportState();
    const fixture = await readFile(FIXTURE, 'utf8');
    const good = (): JsonObject => JSON.parse(fixture) as JsonObject;
    const node = (s: JsonObject, id: string): JsonObject => (s.nodes as JsonObject)[id] as JsonObject;
    const cases: [string, (s: JsonObject) => void, RegExp][] = [
      ['not an object', (s) => (s.nodes = []), /nodes: expected an object, got an array/],
      ['missing next_node', (s) => delete s.next_node, /next_node: missing/],
      ['string id', (s) => (node(s, '1').id = '1'), /nodes\["1"\]\.id: expected an integer/],
      ['id not matching its key', (s) => (node(s, '2').id = 7), /does not match its key/],
      [
        'bad base64 key',
        (s) => (node(s, '2').public_key = 'AgIC*not-base64*'),
        /nodes\["2"\]\.public_key: not a standard-base64 32-byte Ed25519 key/,
      ],
      ['short key', (s) => (node(s, '2').public_key = Buffer.alloc(16, 2).toString('base64')), /32-byte/],
      ['huge owner', (s) => (node(s, '2').owner = 'x'.repeat(5000)), /owner: 5000 characters \(at most 1024\)/],
      [
        'too many tags',
        (s) => (node(s, '1').tags = Array.from({ length: 11 }, (_, i) => `t${i}`)),
        /tags: 11 items \(at most 10\)/,
      ],
      ['invalid hostname', (s) => (node(s, '1').hostname = 'Not_Valid'), /hostname/],
      ['duplicate hostname', (s) => (node(s, '2').hostname = 'alpha'), /hostname "alpha" of node 2 is also node 1's/],
      ['bad address', (s) => (node(s, '2').real_addr = 'nowhere'), /real_addr: "nowhere" is not host:port/],
      ['bad time', (s) => (node(s, '2').last_seen = 'yesterday'), /last_seen: "yesterday" is not an RFC 3339 time/],
      ['bad trust pair', (s) => (s.trust_pairs = ['1:1']), /trust_pairs\[0\]/],
      [
        'huge justification',
        (s) =>
          ((((s.handshake_inbox as JsonObject)['1'] as JsonObject[])[0] as JsonObject).justification = 'j'.repeat(
            5000,
          )),
        /justification: 5000 characters/,
      ],
      [
        'inbox over its bound',
        (s) =>
          ((s.handshake_inbox as JsonObject)['1'] = Array.from({ length: 101 }, (_, i) => ({
            from_node_id: i + 1,
            justification: '',
            timestamp: '2025-01-01T00:00:00Z',
          }))),
        /101 items \(at most 100\)/,
      ],
      [
        'key index contradicting a node',
        (s) => ((s.pub_key_idx as JsonObject)[key(1)] = 2),
        /maps node 1's key to node 2/,
      ],
      [
        'bad key in the index',
        (s) => ((s.pub_key_idx as JsonObject)['%%%'] = 9),
        /pub_key_idx\["%%%"\]: not a standard-base64/,
      ],
      ['negative next_node', (s) => (s.next_node = -1), /next_node: expected an integer from 0 to 4294967295/],
    ];
    for (const [name, mutate, message] of cases) {
      const snapshot = good();
      mutate(snapshot);
      assert.throws(
        () => importInto(store, snapshot),
        (err: unknown) => err instanceof PilotError && err.code === 'invalid_argument' && message.test(err.message),
        name,
      );
      assert.deepEqual(store.exportState(), before, `${name}: store untouched`);
    }
    const file = join(dir, 'broken.json');
    await writeFile(file, '{"next_node": 1,');
    await assert.rejects(
      importJsonStore(embeddedStore(new SqliteRegistryStore(':memory:')), file),
      /is not a JSON registry store/,
    );
    store.close();
  });

  it('rolls the whole replacement back when the database refuses part of it', () => {
    const store = populatedStore();
    const before = store.exportState();
    const node = before.nodes[0];
    assert.ok(node !== undefined);
    const clash: StoreContents = { ...before, nodes: [...before.nodes, { ...node, id: 99, hostname: '' }] };
    assert.throws(() => store.replaceState(clash), /UNIQUE/);
    assert.deepEqual(store.exportState(), before);
    store.close();
  });
});
