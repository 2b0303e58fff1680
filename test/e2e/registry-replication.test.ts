import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { Identity } from '../../src/crypto/identity.js';
import { PilotError } from '../../src/errors.js';
import type { JsonObject } from '../../src/protocol/json.js';
import { RegistryClient } from '../../src/registry/client.js';
import { MAX_STANDBYS } from '../../src/registry/replication-primary.js';
import { RegistryServer } from '../../src/registry/server.js';
import { spawnBin, stopProcess, type Spawned } from './cluster.js';
import { RawConn } from './registry-helpers.js';
import { until } from '../wait.js';
import type { ReplicationOptions } from '../../src/registry/replication.js';
import { loadRegistryTls, type RegistryTlsMaterial } from '../../src/registry/tls.js';

const TOKEN = 'replication-token-for-tests-0123456789';
const FIXTURE = join(import.meta.dirname, '../fixtures/go-registry-store.json');

/** Frames that arrive within `ms`. */
async function framesWithin(conn: RawConn, ms: number): Promise<JsonObject[]> {
  const frames: JsonObject[] = [];
  const end = Date.now() + ms;
  for (let left = ms; left > 0; left = end - Date.now()) {
    const frame = await conn.next(left).catch(() => undefined);
    if (frame === undefined) break;
    frames.push(frame);
  }
  return frames;
}

const isReadOnly = (err: unknown): boolean => err instanceof PilotError && /read-only standby/.test(err.message);

describe('registry replication', () => {
  let dir = '';
  const servers: RegistryServer[] = [];
  const clients: RegistryClient[] = [];
  const raws: RawConn[] = [];
  const procs: Spawned[] = [];

  const server = async (
    name: string,
    replication: ReplicationOptions,
    port = 0,
    tls?: RegistryTlsMaterial,
  ): Promise<RegistryServer> => {
    const s = await RegistryServer.start({
      host: '127.0.0.1',
      port,
      storePath: join(dir, `${name}.db`),
      replication,
      ...(tls ? { tls } : {}),
    });
    servers.push(s);
    return s;
  };
  const client = (port: number, identity = Identity.generate(), nodeId?: number): RegistryClient => {
    const c = new RegistryClient({ address: `127.0.0.1:${port}`, identity, timeoutMs: 3000 });
    c.nodeId = nodeId;
    clients.push(c);
    return c;
  };
  const raw = async (port: number): Promise<RawConn> => {
    const r = await RawConn.open(port);
    raws.push(r);
    return r;
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pilot-replication-'));
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    for (const r of raws.splice(0)) r.close();
    await Promise.all(servers.splice(0).map((s) => s.close()));
    await Promise.all(procs.splice(0).map((p) => stopProcess(p.child, 'SIGKILL')));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('a standby serves what the primary holds within moments, and refuses writes', async () => {
    const primary = await server('p1', { token: TOKEN });
    const standby = await server('s1', { token: TOKEN, standbyOf: `127.0.0.1:${primary.port}` });
    const aliceId = Identity.generate();
    const bobId = Identity.generate();
    const alice = client(primary.port, aliceId);
    const bob = client(primary.port, bobId);
    await alice.register({ listenAddr: '127.0.0.1:4000', hostname: 'alpha' });
    await bob.register({ listenAddr: '127.0.0.1:4001' });
    await alice.setTags(['ml']);
    await alice.reportTrust(2);
    await bob.reportTrust(1);
    await alice.requestHandshake(2, 'hello from alice');

    const reader = client(standby.port);
    const look = await until(
      'alice with her tags at the standby',
      async () => {
        const reply = await reader.lookup(1);
        assert.deepEqual(reply.tags, ['ml']);
        return reply;
      },
      2000,
    );
    assert.equal(look.public_key, aliceId.publicKeyBase64);
    assert.equal(look.hostname, 'alpha');
    assert.equal((await reader.resolveHostname('alpha')).node_id, 1);
    const bobAtStandby = client(standby.port, bobId, 2);
    await until(
      'alice resolved at the standby',
      async () => {
        assert.equal((await bobAtStandby.resolve(1)).real_addr, '127.0.0.1:4000');
        return true;
      },
      1000,
    );
    assert.equal((await bobAtStandby.heartbeat()).type, 'heartbeat_ok');
    const polled = await bobAtStandby.pollHandshakes();
    assert.deepEqual(
      (polled.requests as JsonObject[]).map((r) => r.justification),
      ['hello from alice'],
    );
    assert.deepEqual(
      ((await reader.listNodes(0)).nodes as JsonObject[]).map((n) => n.node_id),
      [1, 2],
    );

    await alice.setHostname('alpha-two');
    await until(
      'the new hostname at the standby',
      async () => {
        assert.equal((await reader.resolveHostname('alpha-two')).node_id, 1);
        return true;
      },
      2000,
    );
    await assert.rejects(reader.resolveHostname('alpha'), /not registered/);

    await assert.rejects(client(standby.port).register({ listenAddr: ':4002' }), isReadOnly);
    await assert.rejects(client(standby.port, aliceId, 1).setHostname('taken-over'), isReadOnly);
    const conn = await raw(standby.port);
    const refused = await conn.request({ type: 'report_trust', node_id: 1, peer_id: 2, signature: 'x' });
    assert.equal(refused.error, 'request failed', 'Go clients see the usual error');
    assert.equal(refused.code, 'read_only');
    assert.equal(
      (await conn.request({ type: 'subscribe_replication', token: TOKEN })).code,
      'read_only',
      'no chained standbys',
    );
    assert.equal((await reader.lookup(1)).hostname, 'alpha-two', 'nothing of it reached the store');
  });

  it('replicates from a TLS primary to a standby pinning its certificate, and never past a wrong pin', async () => {
    const tls = await loadRegistryTls({}, { storePath: ':memory:', listenHost: '127.0.0.1' });
    const primary = await server('tls-p', { token: TOKEN }, 0, tls);
    const pinned = await server('tls-s', {
      token: TOKEN,
      standbyOf: `127.0.0.1:${primary.port}`,
      primaryFingerprint: tls.fingerprint.toUpperCase(),
    });
    const wrongPin = await server('tls-w', {
      token: TOKEN,
      standbyOf: `127.0.0.1:${primary.port}`,
      primaryFingerprint: 'ab'.repeat(32),
    });
    const plain = await server('tls-x', { token: TOKEN, standbyOf: `127.0.0.1:${primary.port}` });
    const writer = new RegistryClient({
      address: `127.0.0.1:${primary.port}`,
      identity: Identity.generate(),
      tls: { fingerprint: tls.fingerprint },
      timeoutMs: 3000,
    });
    clients.push(writer);
    await writer.register({ listenAddr: '127.0.0.1:4000', hostname: 'over-tls' });
    await until(
      'the state at the pinned standby',
      async () => {
        assert.equal((await client(pinned.port).resolveHostname('over-tls')).node_id, 1);
        return true;
      },
      2000,
    );
    // The others had the same time (and more) to connect: neither a wrong pin nor plain TCP gets the state.
    await new Promise((r) => setTimeout(r, 500));
    for (const standby of [wrongPin, plain])
      await assert.rejects(client(standby.port).resolveHostname('over-tls'), /not registered/);
  });

  it('streams snapshots only to a holder of the token, coalesced, without heartbeats triggering one', async () => {
    const plain = await server('plain', {});
    const noToken = await raw(plain.port);
    assert.match(
      String((await noToken.request({ type: 'subscribe_replication', token: TOKEN })).message),
      /not enabled/,
    );
    await noToken.waitClosed();

    const primary = await server('p2', { token: TOKEN });
    for (const token of ['wrong-token-wrong-token-wrong', undefined]) {
      const bad = await raw(primary.port);
      const reply = await bad.request(
        token === undefined ? { type: 'subscribe_replication' } : { type: 'subscribe_replication', token },
      );
      assert.equal(reply.code, 'forbidden');
      assert.equal(reply.error, 'request failed');
      await bad.waitClosed();
    }

    const alice = client(primary.port);
    await alice.register({ listenAddr: '127.0.0.1:4000' });
    const stream = await raw(primary.port);
    stream.send({ type: 'subscribe_replication', token: TOKEN });
    const first = await stream.next();
    assert.equal(first?.type, 'replication_snapshot');
    const snapshot = first?.snapshot as JsonObject;
    assert.deepEqual(Object.keys(snapshot.nodes as JsonObject), ['1']);
    assert.equal(snapshot.next_node, 2);

    await alice.heartbeat();
    assert.deepEqual(await framesWithin(stream, 400), [], 'a heartbeat alone sends no snapshot');

    for (const name of ['a1', 'a2', 'a3', 'a4', 'a5']) await alice.setHostname(name);
    const frames = await framesWithin(stream, 700);
    assert.ok(frames.length >= 1 && frames.length <= 2, `five changes in a burst gave ${frames.length} snapshots`);
    const last = frames.at(-1)?.snapshot as JsonObject;
    assert.equal(((last.nodes as JsonObject)['1'] as JsonObject).hostname, 'a5');

    const extra: RawConn[] = [];
    for (let i = 1; i < MAX_STANDBYS; i++) {
      const c = await raw(primary.port);
      c.send({ type: 'subscribe_replication', token: TOKEN });
      assert.equal((await c.next())?.type, 'replication_snapshot');
      extra.push(c);
    }
    const tooMany = await raw(primary.port);
    assert.equal((await tooMany.request({ type: 'subscribe_replication', token: TOKEN })).code, 'rate_limited');
    extra[0]?.close();
    await until(
      'a freed slot taken again',
      async () => {
        const c = await raw(primary.port);
        c.send({ type: 'subscribe_replication', token: TOKEN });
        assert.equal((await c.next())?.type, 'replication_snapshot', 'a freed slot can be taken again');
        return true;
      },
      2000,
    );
  });

  it('processes: imports a Go store, catches up after the primary restarts, serves after its own restart', async () => {
    const primaryStore = join(dir, 'primary.db');
    const standbyStore = join(dir, 'standby.db');
    const startPrimary = async (addr: string, extra: string[] = []): Promise<{ proc: Spawned; port: number }> => {
      const proc = spawnBin('pilot-registry', [
        '-addr',
        addr,
        '-store',
        primaryStore,
        '-replication-token',
        TOKEN,
        '-log-level',
        'warn',
        ...extra,
      ]);
      procs.push(proc);
      return { proc, port: Number((await proc.waitFor(/registry listening on .*:(\d+)$/))[1]) };
    };
    const startStandby = async (primaryPort: number): Promise<{ proc: Spawned; port: number }> => {
      const args = [
        '-registry-addr',
        '127.0.0.1:0',
        '-beacon-addr',
        '127.0.0.1:0',
        '-store',
        standbyStore,
        '-log-level',
        'info',
      ];
      const proc = spawnBin('pilot-rendezvous', [
        ...args,
        '-standby',
        `127.0.0.1:${primaryPort}`,
        '-replication-token',
        TOKEN,
      ]);
      procs.push(proc);
      return { proc, port: Number((await proc.waitFor(/registry listening on .*:(\d+)$/))[1]) };
    };

    const p1 = await startPrimary('127.0.0.1:0', ['-import-json', FIXTURE]);
    const s1 = await startStandby(p1.port);
    const reader = client(s1.port);
    const alpha = await until('alpha at the standby', () => reader.lookup(1), 2000);
    assert.equal(alpha.hostname, 'alpha', 'the imported Go state reached the standby');
    assert.deepEqual(alpha.tags, ['gpu', 'ml']);
    assert.equal(alpha.real_addr, '198.51.100.4:4000');

    await stopProcess(p1.proc.child, 'SIGKILL');
    assert.equal((await reader.lookup(2)).node_id, 2, 'the standby serves on while the primary is down');
    const refusedImport = spawnBin('pilot-registry', [
      '-addr',
      '127.0.0.1:0',
      '-store',
      primaryStore,
      '-import-json',
      FIXTURE,
    ]);
    procs.push(refusedImport);
    const code = await new Promise<number | null>((r) => refusedImport.child.once('close', (c) => r(c)));
    assert.equal(code, 1);
    assert.match(refusedImport.stderr.join('\n'), /already holds 4 node\(s\); refusing to import/);

    const p2 = await startPrimary(`127.0.0.1:${p1.port}`);
    const carol = client(p2.port);
    assert.equal((await carol.register({ listenAddr: '127.0.0.1:4005', hostname: 'gamma' })).node_id, 5);
    await until(
      'gamma at the standby',
      async () => {
        assert.equal((await reader.resolveHostname('gamma')).node_id, 5);
        return true;
      },
      8000,
    );
    assert.ok(
      s1.proc.stderr.some((l) => /lost the primary/.test(l)),
      'the loss was logged',
    );

    await stopProcess(p2.proc.child, 'SIGKILL');
    await stopProcess(s1.proc.child);
    const s2 = await startStandby(p2.port);
    const again = client(s2.port);
    assert.equal((await again.resolveHostname('gamma')).node_id, 5, 'the last snapshot survived the restart');
    assert.equal((await again.lookup(1)).hostname, 'alpha');
    await assert.rejects(again.register({ listenAddr: ':4009' }), isReadOnly);
  });

  it('processes: replication flags are validated', async () => {
    const cases: [string[], RegExp][] = [
      [['-standby', '127.0.0.1:9'], /needs the primary's replication token/],
      [['-replication-token', 'short'], /must be 16 to 1024 characters/],
      [['-standby', 'nowhere', '-replication-token', TOKEN], /invalid registry address "nowhere"/],
      [['-standby', '127.0.0.1:9', '-replication-token', TOKEN, '-import-json', FIXTURE], /exclude each other/],
    ];
    for (const [args, message] of cases) {
      const proc = spawnBin('pilot-registry', ['-addr', '127.0.0.1:0', '-store', join(dir, 'flags.db'), ...args]);
      procs.push(proc);
      assert.equal(await new Promise<number | null>((r) => proc.child.once('close', (c) => r(c))), 2, args.join(' '));
      assert.match(proc.stderr.join('\n'), message);
    }
  });
});
