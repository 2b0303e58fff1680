import assert from 'node:assert/strict';
import { once } from 'node:events';
import { X509Certificate } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Identity } from '../../src/crypto/identity.js';
import { isPilotError, type PilotError } from '../../src/errors.js';
import { RegistryClient } from '../../src/registry/client.js';
import { RegistryServer } from '../../src/registry/server.js';
import { loadRegistryTls } from '../../src/registry/tls.js';
import { agentEnv, ctl, errorEnvelope, freePort, killPids, okData, readPidFile, type AgentEnv } from './cli-harness.js';
import { spawnBin, stopProcess, type Spawned } from './cluster.js';
import { RawConn } from './registry-helpers.js';

const LISTENING = /registry listening on .*:(\d+)$/;
const FINGERPRINT = /^registry TLS fingerprint ([0-9a-f]{64})$/;

interface TlsRegistry {
  readonly proc: Spawned;
  readonly port: number;
  readonly fingerprint: string;
}

async function startTlsRegistry(store: string): Promise<TlsRegistry> {
  const proc = spawnBin('pilot-registry', ['-addr', '127.0.0.1:0', '-store', store, '-tls', '-log-level', 'warn']);
  const [listening, printed] = await Promise.all([proc.waitFor(LISTENING), proc.waitFor(FINGERPRINT)]);
  return { proc, port: Number(listening[1]), fingerprint: printed[1] as string };
}

/** Settles with the rejection of `promise` and how long it took. */
async function failure(promise: Promise<unknown>): Promise<{ err: PilotError; ms: number }> {
  const started = performance.now();
  try {
    await promise;
  } catch (err) {
    assert.ok(isPilotError(err), `not a PilotError: ${String(err)}`);
    return { err, ms: performance.now() - started };
  }
  assert.fail('expected a failure');
}

const otherFingerprint = (fp: string): string => `${fp.startsWith('f') ? '0' : 'f'}${fp.slice(1)}`;

describe('registry over TLS with a pinned certificate', () => {
  let dir = '';
  let store = '';
  let registry: TlsRegistry;
  const clients: RegistryClient[] = [];
  const client = (opts: Partial<ConstructorParameters<typeof RegistryClient>[0]> = {}): RegistryClient => {
    const c = new RegistryClient({ address: `127.0.0.1:${registry.port}`, timeoutMs: 3000, ...opts });
    clients.push(c);
    return c;
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pilot-registry-tls-e2e-'));
    store = join(dir, 'state', 'registry.db');
    registry = await startTlsRegistry(store);
  });
  after(async () => {
    for (const c of clients) c.close();
    await stopProcess(registry.proc.child);
    await rm(dir, { recursive: true, force: true });
  });

  it('prints, after the listening line, the fingerprint of the certificate kept next to the store', async () => {
    const lines = registry.proc.lines;
    assert.match(lines[0] ?? '', LISTENING);
    assert.match(lines[1] ?? '', FINGERPRINT);
    const cert = new X509Certificate(await readFile(join(dir, 'state', 'registry-tls.crt')));
    assert.equal(registry.fingerprint, cert.fingerprint256.replaceAll(':', '').toLowerCase());
  });

  it('a client pinned to it registers and looks up; the pin may be upper case with colons', async () => {
    const alice = client({ identity: Identity.generate(), tls: { fingerprint: registry.fingerprint } });
    const reply = await alice.register({ listenAddr: '127.0.0.1:4000', hostname: 'alice' });
    assert.equal(typeof reply.node_id, 'number');
    const typed = registry.fingerprint.toUpperCase().match(/../g)?.join(':') ?? '';
    const reader = client({ tls: { fingerprint: typed } });
    const look = await reader.lookup(alice.nodeId as number);
    assert.equal(look.node_id, alice.nodeId);
    assert.equal((await reader.resolveHostname('alice')).node_id, alice.nodeId);
  });

  it('a wrong pin fails at once, naming both fingerprints, without reconnect attempts', async () => {
    const wrong = otherFingerprint(registry.fingerprint);
    const c = client({ identity: Identity.generate(), tls: { fingerprint: wrong }, timeoutMs: 10_000 });
    const { err, ms } = await failure(c.register({ listenAddr: '127.0.0.1:4001' }));
    assert.equal(err.code, 'refused');
    assert.match(err.message, /does not match the pinned fingerprint/);
    assert.ok(err.message.includes(`expected ${wrong}, got ${registry.fingerprint}`), err.message);
    assert.ok(ms < 2000, `took ${ms} ms`);
  });

  it('a plaintext client gets no reply (bounded by its timeout) and the registry keeps serving', async () => {
    const raw = await RawConn.open(registry.port);
    raw.send({ type: 'lookup', node_id: 1 });
    assert.equal(await raw.next(3000), undefined, 'closed without any frame');
    const plain = client({ timeoutMs: 1500 });
    const { ms } = await failure(plain.lookup(1));
    assert.ok(ms < 3000, `took ${ms} ms`);
    const pinned = client({ tls: { fingerprint: registry.fingerprint } });
    assert.equal((await pinned.lookup(1)).type, 'lookup_ok');
  });

  it('a pinned client refuses a plaintext registry at once', async () => {
    const plain = await RegistryServer.start({ host: '127.0.0.1', port: 0, storePath: ':memory:' });
    try {
      const c = new RegistryClient({
        address: `127.0.0.1:${plain.port}`,
        tls: { fingerprint: registry.fingerprint },
        timeoutMs: 10_000,
      });
      const { err, ms } = await failure(c.lookup(1));
      c.close();
      assert.equal(err.code, 'protocol');
      assert.match(err.message, /TLS handshake with the registry at 127\.0\.0\.1:\d+ failed/);
      assert.ok(ms < 2000, `took ${ms} ms`);
    } finally {
      await plain.close();
    }
  });

  it('keeps the same certificate, and so the same fingerprint, across a restart', async () => {
    const before = registry.fingerprint;
    await stopProcess(registry.proc.child);
    registry = await startTlsRegistry(store);
    assert.equal(registry.fingerprint, before);
    assert.equal(
      (await client({ tls: { fingerprint: before } }).resolveHostname('alice')).type,
      'resolve_hostname_ok',
      'state survived too',
    );
  });
});

describe('daemon and pilotctl against a TLS registry', () => {
  let dir = '';
  let rendezvous: Spawned;
  let registryAddr = '';
  let beaconAddr = '';
  let fingerprint = '';
  const daemons: Spawned[] = [];
  const agents: AgentEnv[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pilot-daemon-tls-e2e-'));
    rendezvous = spawnBin('pilot-rendezvous', [
      '-registry-addr',
      '127.0.0.1:0',
      '-beacon-addr',
      '127.0.0.1:0',
      '-store',
      join(dir, 'rdv', 'registry.db'),
      '-tls',
    ]);
    const [r, b, f] = await Promise.all([
      rendezvous.waitFor(LISTENING),
      rendezvous.waitFor(/beacon listening on .*:(\d+)/),
      rendezvous.waitFor(FINGERPRINT),
    ]);
    registryAddr = `127.0.0.1:${r[1]}`;
    beaconAddr = `127.0.0.1:${b[1]}`;
    fingerprint = f[1] as string;
  });
  after(async () => {
    await Promise.all(daemons.map((d) => stopProcess(d.child)));
    const pids: number[] = [];
    for (const agent of agents) {
      for (const file of ['pilot.pid', 'rendezvous.pid']) {
        const pid = await readPidFile(join(agent.home, file));
        if (pid !== undefined) pids.push(pid);
      }
    }
    await killPids(pids);
    await stopProcess(rendezvous.child);
    await rm(dir, { recursive: true, force: true });
  });

  function daemon(name: string, pin: string): Spawned {
    const home = join(dir, name);
    const args = [
      '-registry',
      registryAddr,
      '-beacon',
      beaconAddr,
      '-listen',
      '127.0.0.1:0',
      '-socket',
      join(dir, `${name}.sock`),
      '-identity',
      join(home, 'identity.key'),
      '-home',
      home,
      '-log-level',
      'warn',
      '-registry-tls',
      '-registry-fingerprint',
      pin,
    ];
    const proc = spawnBin('pilot-daemon', args, { PILOT_HOME: home });
    daemons.push(proc);
    return proc;
  }

  it('pilot-rendezvous lists the TLS flags and checks them like pilot-registry', async () => {
    const help = spawnBin('pilot-rendezvous', ['-help']);
    await once(help.child, 'exit');
    assert.match(help.lines.join('\n'), /-tls-cert string/);
    const bad = spawnBin('pilot-rendezvous', [
      '-registry-addr',
      '127.0.0.1:0',
      '-beacon-addr',
      '127.0.0.1:0',
      '-tls',
      '-tls-key',
      join(dir, 'k.pem'),
    ]);
    const [code] = (await once(bad.child, 'exit')) as [number | null];
    assert.equal(code, 2);
    assert.match(bad.stderr.join('\n'), /-tls-cert and -tls-key go together/);
  });

  it('a daemon with -registry-tls and the right fingerprint registers through it', async () => {
    const proc = daemon('good', fingerprint);
    const ready = await proc.waitFor(/daemon ready \S+ node (\d+)/);
    const c = new RegistryClient({ address: registryAddr, tls: { fingerprint } });
    try {
      assert.equal((await c.lookup(Number(ready[1]))).node_id, Number(ready[1]));
    } finally {
      c.close();
    }
  });

  it('a daemon with a wrong fingerprint exits at once with the mismatch', async () => {
    const started = performance.now();
    const proc = daemon('bad', otherFingerprint(fingerprint));
    const [code] = (await once(proc.child, 'exit')) as [number | null];
    assert.equal(code, 1);
    const stderr = proc.stderr.join('\n');
    assert.match(stderr, /registry certificate at 127\.0\.0\.1:\d+ does not match the pinned fingerprint/);
    assert.ok(stderr.includes(`got ${fingerprint}`), stderr);
    assert.ok(performance.now() - started < 5000);
  });

  it('pilotctl lookup uses the fingerprint from the flag or the environment, and refuses a wrong one', async () => {
    const agent = agentEnv(dir, 'cli', registryAddr, beaconAddr);
    agents.push(agent);
    const byFlag = okData(await ctl(agent, ['lookup', '1', '--registry-fingerprint', fingerprint, '--json']));
    assert.equal(byFlag.type, 'lookup_ok');
    const byEnv = okData(
      await ctl({ ...agent, env: { ...agent.env, PILOT_REGISTRY_FINGERPRINT: fingerprint } }, [
        'lookup',
        '1',
        '--json',
      ]),
    );
    assert.equal(byEnv.node_id, 1);
    const wrong = errorEnvelope(
      await ctl(agent, ['lookup', '1', '--registry-fingerprint', otherFingerprint(fingerprint), '--json']),
    );
    assert.equal(wrong.code, 'refused');
    assert.match(wrong.message, /does not match the pinned fingerprint/);
    const unpinned = errorEnvelope(await ctl(agent, ['lookup', '1', '--registry-tls', '--json']));
    assert.equal(unpinned.code, 'invalid_argument');
    assert.match(unpinned.message, /--registry-tls needs the registry certificate fingerprint/);
  });

  it('pilotctl daemon start with a configured fingerprint starts a TLS local rendezvous and a pinned daemon', async () => {
    const registry = `127.0.0.1:${await freePort('tcp')}`;
    const beacon = `127.0.0.1:${await freePort('udp')}`;
    const agent = agentEnv(dir, 'local', registry, beacon);
    agents.push(agent);
    await mkdir(agent.home, { recursive: true, mode: 0o700 });
    // The certificate the local rendezvous will find next to its store, as after an earlier run.
    const { fingerprint: local } = await loadRegistryTls(
      {},
      { storePath: join(agent.home, 'registry.db'), listenHost: '127.0.0.1' },
    );
    okData(await ctl(agent, ['config', '--set', `registry_fingerprint=${local.toUpperCase()}`, '--json']));
    const started = okData(await ctl(agent, ['daemon', 'start', '--json']));
    assert.equal(typeof started.node_id, 'number');
    const c = new RegistryClient({ address: registry, tls: { fingerprint: local } });
    try {
      assert.equal((await c.lookup(started.node_id as number)).node_id, started.node_id);
    } finally {
      c.close();
    }
    const stopped = okData(await ctl(agent, ['daemon', 'stop', '--all', '--json']));
    assert.ok('rendezvous' in stopped, JSON.stringify(stopped));
  });
});
