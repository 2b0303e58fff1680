import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { pino, type Logger } from 'pino';
import { startRendezvous } from '../../src/beacon/rendezvous.js';
import { BeaconServer } from '../../src/beacon/server.js';
import type { JsonObject } from '../../src/protocol/json.js';
import { RegistryClient } from '../../src/registry/client.js';
import { RegistryServer } from '../../src/registry/server.js';
import { loadRegistryTls } from '../../src/registry/tls.js';
import { u16, u32, UdpClient } from './beacon-helpers.js';
import { freePort } from './cli-harness.js';
import { until } from '../wait.js';
import { spawnBin, stopProcess, type Spawned } from './cluster.js';
import { RawConn } from './registry-helpers.js';

const FRAME = '50494c54deadbeef'; // "PILT" + 4 payload bytes
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const FAST = { intervalMs: 100, minRefreshGapMs: 50, roundTimeoutMs: 1000 };

/** A logger whose lines are kept for assertions. */
function recordingLogger(): { log: Logger; messages: () => string[] } {
  const lines: JsonObject[] = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as JsonObject) });
  return { log, messages: () => lines.map((l) => String(l.msg)) };
}

async function beaconList(registryPort: number): Promise<JsonObject[]> {
  const conn = await RawConn.open(registryPort);
  try {
    const reply = await conn.request({ type: 'beacon_list' });
    return Array.isArray(reply.beacons) ? (reply.beacons as JsonObject[]) : [];
  } finally {
    conn.close();
  }
}

async function discover(port: number, client: UdpClient, nodeId: number): Promise<void> {
  await client.send(port, `01${u32(nodeId)}`);
  await client.next(2000);
}

/** Waits for a datagram with exactly these bytes, skipping others. */
async function receives(client: UdpClient, expected: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const seen = new Set<string>();
  while (Date.now() < deadline) {
    const got = hex(await client.next(Math.max(1, deadline - Date.now())).catch(() => Buffer.alloc(0)));
    if (got === expected) return;
    if (got !== '') seen.add(got);
  }
  assert.fail(`no ${expected} within ${timeoutMs} ms; got ${[...seen].join(', ') || 'nothing'}`);
}

/** Sends a relay from `sender` (registered at `viaPort`) to `dest` until `receiver` gets it. */
async function relayArrives(
  viaPort: number,
  from: UdpClient,
  sender: number,
  dest: number,
  receiver: UdpClient,
): Promise<void> {
  await until(
    `relay ${sender} → ${dest}`,
    async () => {
      await from.send(viaPort, `05${u32(sender)}${u32(dest)}${FRAME}`);
      const got = await receiver.next(200).catch(() => undefined);
      return got && hex(got) === `06${u32(sender)}${FRAME}` ? true : undefined;
    },
    10_000,
    { everyMs: 0 },
  );
}

describe('beacon peer discovery through the registry', () => {
  const cleanup: (() => unknown)[] = [];
  after(async () => {
    for (const fn of cleanup.reverse()) await fn();
  });

  it('registers with a TLS registry through a pinned connection, and not past a wrong pin', async () => {
    const tls = await loadRegistryTls({}, { storePath: ':memory:', listenHost: '127.0.0.1' });
    const registry = await RegistryServer.start({ host: '127.0.0.1', port: 0, storePath: ':memory:', tls });
    cleanup.push(() => registry.close());
    const at = `127.0.0.1:${registry.port}`;
    const pinned = await BeaconServer.start({
      host: '127.0.0.1',
      port: 0,
      beaconId: 7,
      discovery: { registry: at, registryFingerprint: tls.fingerprint, ...FAST },
    });
    const wrong = await BeaconServer.start({
      host: '127.0.0.1',
      port: 0,
      beaconId: 8,
      discovery: { registry: at, registryFingerprint: 'cd'.repeat(32), ...FAST },
    });
    cleanup.push(
      () => pinned.close(),
      () => wrong.close(),
    );
    const reader = new RegistryClient({ address: at, tls: { fingerprint: tls.fingerprint } });
    cleanup.push(() => reader.close());
    const ids = async (): Promise<number[]> =>
      ((await reader.request({ type: 'beacon_list' })).beacons as JsonObject[]).map((b) => Number(b.id));
    await until('beacon 7 registered over TLS', async () => ((await ids()).includes(7) ? true : undefined), 5000);
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(await ids(), [7], 'the beacon with the wrong pin never registered');
  });

  it('two beacons registered with one registry relay for each other without -peers', async () => {
    const registry = await RegistryServer.start({ host: '127.0.0.1', port: 0, storePath: ':memory:' });
    cleanup.push(() => registry.close());
    const discovery = { registry: `127.0.0.1:${registry.port}`, ...FAST };
    const x = await BeaconServer.start({ host: '127.0.0.1', port: 0, beaconId: 1, discovery, syncIntervalMs: 100 });
    const y = await BeaconServer.start({ host: '127.0.0.1', port: 0, beaconId: 2, discovery, syncIntervalMs: 100 });
    cleanup.push(
      () => x.close(),
      () => y.close(),
    );
    const [a, b] = await Promise.all([UdpClient.open(), UdpClient.open()]);
    cleanup.push(
      () => a.close(),
      () => b.close(),
    );

    await until('both beacons registered', async () =>
      (await beaconList(registry.port)).length === 2 ? true : undefined,
    );
    assert.deepEqual(await beaconList(registry.port), [
      { id: 1, addr: `127.0.0.1:${x.port}` },
      { id: 2, addr: `127.0.0.1:${y.port}` },
    ]);
    await discover(x.port, a, 10);
    await discover(y.port, b, 20);
    await relayArrives(y.port, b, 20, 10, a);
    await relayArrives(x.port, a, 10, 20, b);
    assert.deepEqual(x.peerAddresses(), [`127.0.0.1:${y.port}`]);
    assert.deepEqual(y.peerAddresses(), [`127.0.0.1:${x.port}`]);
  });

  it('gives an unanswering registered address only empty Syncs and drops it when its registration expires', async () => {
    let clock = Date.now();
    const registry = await RegistryServer.start({
      host: '127.0.0.1',
      port: 0,
      storePath: ':memory:',
      now: () => clock,
    });
    cleanup.push(() => registry.close());
    const x = await BeaconServer.start({
      host: '127.0.0.1',
      port: 0,
      beaconId: 1,
      syncIntervalMs: 100,
      discovery: { registry: `127.0.0.1:${registry.port}`, ...FAST },
    });
    cleanup.push(() => x.close());
    const [node, fake] = await Promise.all([UdpClient.open(), UdpClient.open()]);
    cleanup.push(
      () => node.close(),
      () => fake.close(),
    );
    await discover(x.port, node, 10);
    const conn = await RawConn.open(registry.port);
    cleanup.push(() => conn.close());
    assert.equal(
      (await conn.request({ type: 'beacon_register', beacon_id: 9, addr: `127.0.0.1:${fake.port}` })).type,
      'beacon_register_ok',
    );

    // Whoever registers an address cannot make the beacon send its node list there …
    assert.equal(hex(await fake.next(3000)), `07${u32(1)}${u16(0)}`);
    assert.deepEqual(new Set((await fake.drain(300)).map(hex)), new Set([`07${u32(1)}${u16(0)}`]));
    // … until that address gossips back like a beacon.
    await fake.send(x.port, `07${u32(9)}${u16(1)}${u32(99)}`);
    await receives(fake, `07${u32(1)}${u16(1)}${u32(10)}`, 1000);
    assert.deepEqual(x.peerAddresses(), [`127.0.0.1:${fake.port}`]);

    clock += 61_000;
    await until('expired beacon dropped', async () => (x.peerAddresses().length === 0 ? true : undefined), 3000, {
      everyMs: 20,
    });
    const refused = x.stats().drops.sync_not_peer;
    await fake.send(x.port, `07${u32(9)}${u16(1)}${u32(99)}`);
    await until('Sync refused', async () => (x.stats().drops.sync_not_peer > refused ? true : undefined), 2000, {
      everyMs: 20,
    });
  });

  it('starts while the registry is down, logs the outage once and registers when it comes up', async () => {
    const port = await freePort('tcp');
    const { log, messages } = recordingLogger();
    const x = await BeaconServer.start({
      host: '127.0.0.1',
      port: 0,
      beaconId: 4,
      log,
      discovery: { registry: `127.0.0.1:${port}`, ...FAST },
    });
    cleanup.push(() => x.close());
    const client = await UdpClient.open();
    cleanup.push(() => client.close());
    await discover(x.port, client, 10); // serving meanwhile

    const failedRounds = (): number => messages().filter((m) => m === 'beacon discovery round failed').length;
    await until('several failed rounds', async () => (failedRounds() >= 3 ? true : undefined), 5000, { everyMs: 20 });
    assert.equal(messages().filter((m) => m.includes('registry unavailable')).length, 1);

    const registry = await RegistryServer.start({ host: '127.0.0.1', port, storePath: ':memory:' });
    cleanup.push(() => registry.close());
    await until(
      'registered after the outage',
      async () => ((await beaconList(port)).length === 1 ? true : undefined),
      5000,
      { everyMs: 50 },
    );
    assert.deepEqual(await beaconList(port), [{ id: 4, addr: `127.0.0.1:${x.port}` }]);
    await until(
      'recovery logged',
      async () => (messages().includes('beacon discovery: registry reachable again') ? true : undefined),
      2000,
      { everyMs: 20 },
    );

    const started = Date.now();
    await x.close();
    assert.ok(Date.now() - started < 1000);
  });

  it('lets a rendezvous beacon register with its own registry', async () => {
    const rdv = await startRendezvous({
      registryHost: '127.0.0.1',
      registryPort: 0,
      beaconHost: '127.0.0.1',
      beaconPort: 0,
      storePath: ':memory:',
      beaconId: 5,
      beaconDiscovery: FAST,
    });
    cleanup.push(() => rdv.close());
    const other = await BeaconServer.start({
      host: '127.0.0.1',
      port: 0,
      beaconId: 6,
      discovery: { registry: `127.0.0.1:${rdv.registryPort}`, ...FAST },
    });
    cleanup.push(() => other.close());
    await until(
      'peers found',
      async () => (rdv.beacon.peerAddresses().length === 1 && other.peerAddresses().length === 1 ? true : undefined),
      5000,
      { everyMs: 20 },
    );
    assert.deepEqual(rdv.beacon.peerAddresses(), [`127.0.0.1:${other.port}`]);
    assert.deepEqual(other.peerAddresses(), [`127.0.0.1:${rdv.beaconPort}`]);
    await assert.rejects(
      startRendezvous({ registryPort: 0, beaconPort: 0, storePath: ':memory:', beaconDiscovery: {} }),
      /non-zero beacon id/,
    );
  });
});

describe('pilot-beacon -registry', () => {
  const procs: Spawned[] = [];
  const cleanup: (() => unknown)[] = [];
  after(async () => {
    await Promise.all(procs.map((p) => stopProcess(p.child, 'SIGKILL')));
    for (const fn of cleanup.reverse()) await fn();
  });

  async function startBeacon(args: string[]): Promise<{ proc: Spawned; port: number }> {
    const proc = spawnBin('pilot-beacon', ['-addr', '127.0.0.1:0', '-log-level', 'warn', ...args]);
    procs.push(proc);
    const m = await proc.waitFor(/^beacon listening on .*:(\d+)$/);
    return { proc, port: Number(m[1]) };
  }

  it('finds the other beacon through the registry and relays across it; exits promptly on SIGTERM', async () => {
    const registry = await RegistryServer.start({ host: '127.0.0.1', port: 0, storePath: ':memory:' });
    cleanup.push(() => registry.close());
    const [a, b] = await Promise.all([UdpClient.open(), UdpClient.open()]);
    cleanup.push(
      () => a.close(),
      () => b.close(),
    );
    const reg = `127.0.0.1:${registry.port}`;
    const one = await startBeacon(['-registry', reg, '-beacon-id', '1']);
    await discover(one.port, a, 10);
    const two = await startBeacon(['-registry', reg, '-beacon-id', '2']);
    await discover(two.port, b, 20);
    await relayArrives(two.port, b, 20, 10, a);
    assert.deepEqual(await beaconList(registry.port), [
      { id: 1, addr: `127.0.0.1:${one.port}` },
      { id: 2, addr: `127.0.0.1:${two.port}` },
    ]);
    for (const { proc } of [one, two]) {
      const started = Date.now();
      await stopProcess(proc.child);
      assert.equal(proc.child.exitCode, 0);
      assert.ok(Date.now() - started < 3000);
      assert.deepEqual(proc.stderr, []);
    }
  });

  it('serves with the registry down and warns about it', async () => {
    const port = await freePort('tcp');
    const { proc, port: beaconPort } = await startBeacon(['-registry', `127.0.0.1:${port}`, '-beacon-id', '3']);
    const client = await UdpClient.open();
    cleanup.push(() => client.close());
    await discover(beaconPort, client, 10);
    await until(
      'outage warning',
      async () => (proc.stderr.some((l) => l.includes('registry unavailable')) ? true : undefined),
      5000,
      { everyMs: 20 },
    );
    assert.equal(proc.stderr.length, 1);
    await stopProcess(proc.child);
    assert.equal(proc.child.exitCode, 0);
  });

  it('warns that -registry needs -beacon-id and rejects a bad -advertise', async () => {
    const { proc } = await startBeacon(['-registry', '127.0.0.1:9']);
    await until('warning', async () => (proc.stderr.length > 0 ? true : undefined), 5000, { everyMs: 20 });
    assert.match(
      proc.stderr.join('\n'),
      /-registry verifies node proofs only: peer discovery needs a non-zero -beacon-id/,
    );
    await stopProcess(proc.child);

    const bad = spawnBin('pilot-beacon', [
      '-addr',
      '127.0.0.1:0',
      '-registry',
      '127.0.0.1:9',
      '-beacon-id',
      '1',
      '-advertise',
      ':9001',
    ]);
    procs.push(bad);
    const code = await new Promise<number | null>((resolve) => bad.child.once('exit', resolve));
    assert.equal(code, 2);
    assert.match(bad.stderr.join('\n'), /invalid -advertise address/);
  });
});
