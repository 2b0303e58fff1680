import assert from 'node:assert/strict';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { silentLogger } from '../../src/log.js';
import type { JsonObject } from '../../src/protocol/json.js';
import { encodeRegistryFrame, RegistryFrameSplitter } from '../../src/protocol/registry-frame.js';
import { Liveness } from '../../src/registry/liveness.js';
import { ReplicationPrimary } from '../../src/registry/replication-primary.js';
import { ReplicationStandby } from '../../src/registry/replication-standby.js';
import { liveFields } from '../../src/registry/replication.js';
import { SignatureVerifier } from '../../src/registry/auth.js';
import type { RegistryState } from '../../src/registry/context.js';
import { KeyedRateLimiter } from '../../src/rate-limit.js';
import { exportSnapshot } from '../../src/registry/snapshot-export.js';
import { parseLiveFields } from '../../src/registry/snapshot-import.js';
import { embeddedStore } from '../../src/registry/embedded-store.js';
import { SqliteRegistryStore } from '../../src/registry/sqlite-store.js';
import { RequestCounter } from '../../src/registry/request-counter.js';
import { waitFor } from '../wait.js';

const TOKEN = 'unit-test-replication-token';
const key = (n: number): string => Buffer.alloc(32, n).toString('base64');

/** Frames read from a socket, awaitable one by one. */
class FrameReader {
  readonly frames: JsonObject[] = [];
  readonly #splitter = new RegistryFrameSplitter();
  #wake: (() => void) | undefined;

  constructor(socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      for (const r of this.#splitter.push(chunk)) if (r.ok) this.frames.push(r.value);
      this.#wake?.();
    });
  }

  /** Waits until `count` frames arrived in total. */
  async until(count: number, timeoutMs = 2000): Promise<JsonObject[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.frames.length < count) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`only ${this.frames.length} of ${count} frames arrived`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    return this.frames;
  }
}

/** A connected TCP socket pair on 127.0.0.1: [server side, client side]. */
async function socketPair(cleanup: (() => void)[]): Promise<[Socket, Socket]> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const accepted = new Promise<Socket>((r) => server.once('connection', r));
  const client = connect((server.address() as AddressInfo).port, '127.0.0.1');
  const serverSide = await accepted;
  // The registry's connection handler owns socket errors in production; here the test does (a reset
  // when one side is destroyed while the other writes is expected).
  for (const s of [client, serverSide]) s.on('error', () => undefined);
  cleanup.push(() => {
    client.destroy();
    serverSide.destroy();
    server.close();
  });
  return [serverSide, client];
}

describe('replication primary and standby', () => {
  const cleanup: (() => void)[] = [];
  afterEach(() => {
    for (const fn of cleanup.splice(0).reverse()) fn();
  });

  it('primary: snapshot first, coalesced changes, heartbeats with liveness, an honest notice when too large', async () => {
    let hostname = 'first';
    let huge = false;
    const primary = new ReplicationPrimary({
      token: TOKEN,
      log: silentLogger(),
      snapshot: async () => ({ hostname, padding: huge ? 'x'.repeat(1_100_000) : '' }),
      heartbeatFields: async () => ({ pilot_last_seen: { '1': '2025-01-01T00:00:00Z' } }),
      coalesceMs: 50,
      heartbeatMs: 150,
    });
    cleanup.push(() => primary.close());
    const [serverSide, client] = await socketPair(cleanup);
    const reader = new FrameReader(client);

    assert.throws(
      () => primary.subscribe(serverSide, 'test', { type: 'subscribe_replication', token: 'nope' }),
      /token missing or wrong/,
    );
    primary.subscribe(serverSide, 'test', { type: 'subscribe_replication', token: TOKEN });
    assert.deepEqual((await reader.until(1))[0], {
      type: 'replication_snapshot',
      snapshot: { hostname: 'first', padding: '' },
    });

    hostname = 'second';
    primary.changed();
    primary.changed();
    hostname = 'third';
    primary.changed();
    const frames = await reader.until(2);
    await new Promise((r) => setTimeout(r, 100));
    const snapshots = reader.frames.filter((f) => f.type === 'replication_snapshot');
    assert.equal(snapshots.length, 2, 'three changes within the window make one snapshot');
    assert.equal((frames[1]!.snapshot as JsonObject).hostname, 'third');

    const heartbeat = (await reader.until(reader.frames.length + 1)).at(-1);
    assert.deepEqual(heartbeat, { type: 'heartbeat', pilot_last_seen: { '1': '2025-01-01T00:00:00Z' } });

    huge = true;
    primary.changed();
    await waitFor(() => reader.frames.some((f) => f.type === 'error'));
    const notice = reader.frames.find((f) => f.type === 'error');
    assert.match(String(notice?.message), /exceeds the 1 MiB replication frame limit/);
    assert.equal(notice?.error, 'request failed');
    huge = false;
    hostname = 'fits-again';
    primary.changed();
    await waitFor(() => reader.frames.some((f) => (f.snapshot as JsonObject | undefined)?.hostname === 'fits-again'));
    assert.equal(primary.subscribers, 1);
    client.destroy();
    await waitFor(() => primary.subscribers === 0);
  });

  it('heartbeat frames carry what changes without a snapshot, in a form the standby reads back', async () => {
    const now = Date.parse('2025-06-01T00:00:00Z');
    const store = new SqliteRegistryStore(':memory:');
    cleanup.push(() => store.close());
    for (const n of [1, 2, 3]) store.createNode({ publicKey: key(n), owner: '', realAddr: '' });
    store.updateNode(3, { registered: false });
    store.upsertBeacon({ id: 5, addr: '192.0.2.5:9001', expiresAt: now + 20_000 });
    const liveness = new Liveness();
    liveness.touch(1, now - 1500);
    liveness.touch(3, now);
    const state: RegistryState = {
      store: embeddedStore(store),
      log: silentLogger(),
      liveness,
      verifier: new SignatureVerifier(0),
      registerLimiter: new KeyedRateLimiter<string>(1, 1),
      adminToken: undefined,
      requireSignedBody: false,
      requests: new RequestCounter(),
      now: () => now,
      taskNow: () => now,
      notifyHandshake: () => {},
    };
    const fields = await liveFields(state);
    assert.deepEqual(fields, {
      pilot_last_seen: { '1': '2025-05-31T23:59:58.5Z' },
      pilot_beacons: [{ id: 5, addr: '192.0.2.5:9001', ttl_ms: 20_000 }],
    });
    const read = parseLiveFields(JSON.parse(JSON.stringify(fields)) as JsonObject, now + 1000);
    assert.deepEqual([...read.lastSeen], [[1, now - 1500]], 'registered nodes only');
    assert.deepEqual(read.beacons, [{ id: 5, addr: '192.0.2.5:9001', expiresAt: now + 21_000 }]);
  });

  it('standby: applies snapshots and liveness, keeps the last good state, reconnects after silence', async () => {
    const source = new SqliteRegistryStore(':memory:');
    source.createNode({ publicKey: key(1), owner: '', realAddr: '192.0.2.1:4000' });
    source.updateNode(1, { hostname: 'alpha' });
    const now = Date.now();
    const snapshot = exportSnapshot(source.exportState(), { now, lastSeen: () => now - 1000, beacons: [] });
    source.close();

    const connections: Socket[] = [];
    const subscriptions: JsonObject[] = [];
    const fakePrimary: Server = createServer((socket) => {
      connections.push(socket);
      const splitter = new RegistryFrameSplitter();
      socket.on('data', (chunk: Buffer) => {
        for (const r of splitter.push(chunk)) if (r.ok) subscriptions.push(r.value);
      });
      socket.on('error', () => {});
    });
    await new Promise<void>((r) => fakePrimary.listen(0, '127.0.0.1', r));
    cleanup.push(() => fakePrimary.close());
    const store = new SqliteRegistryStore(':memory:');
    const liveness = new Liveness();
    const standby = new ReplicationStandby({
      primary: { host: '127.0.0.1', port: (fakePrimary.address() as AddressInfo).port },
      token: TOKEN,
      store: embeddedStore(store),
      liveness,
      log: silentLogger(),
      now: Date.now,
      retryMs: 50,
      readTimeoutMs: 300,
    });
    cleanup.push(() => {
      standby.stop();
      for (const s of connections) s.destroy();
      store.close();
    });

    await waitFor(() => subscriptions.length === 1);
    assert.deepEqual(subscriptions[0], { type: 'subscribe_replication', token: TOKEN });
    const send = (msg: JsonObject): void => void connections.at(-1)?.write(encodeRegistryFrame(msg));
    send({ type: 'replication_snapshot', snapshot });
    await waitFor(() => standby.replicating);
    assert.equal(store.getNodeByHostname('alpha')?.id, 1);
    assert.ok(liveness.isOnline(1, Date.now()));

    send({
      type: 'replication_snapshot',
      snapshot: { ...snapshot, nodes: { '1': { id: 1, public_key: 'not a key' } } },
    });
    send({
      type: 'heartbeat',
      pilot_last_seen: { '1': new Date(now - 100).toISOString() },
      pilot_beacons: [{ id: 7, addr: '192.0.2.7:9001', ttl_ms: 60_000 }],
    });
    await waitFor(() => store.listBeacons(Date.now()).length === 1);
    assert.equal(store.getNodeByHostname('alpha')?.id, 1, 'the invalid snapshot changed nothing');
    assert.equal(standby.snapshotsApplied, 1);
    assert.equal(liveness.lastSeen(1), now - 100, 'heartbeats move last_seen forward');
    assert.deepEqual(
      store.listBeacons(Date.now()).map((b) => b.addr),
      ['192.0.2.7:9001'],
    );

    // No frame for the read timeout: the standby gives up on the connection and subscribes again.
    await waitFor(() => subscriptions.length === 2, 2000);
    assert.equal(standby.replicating, false);
    assert.equal(store.getNodeByHostname('alpha')?.id, 1, 'the last snapshot stays served');
  });
});
