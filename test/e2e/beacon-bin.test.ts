import assert from 'node:assert/strict';
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startRendezvous } from '../../src/beacon/rendezvous.js';
import { loopbackEp, u32, UdpClient } from './beacon-helpers.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
type Child = ChildProcessByStdio<null, Readable, Readable>;

function run(bin: string, args: string[]): Child {
  return spawn(process.execPath, ['--import', 'tsx', join(root, 'src/bin', bin), ...args], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PILOT_HOME: join(tmpdir(), 'pilot-beacon-bin-test-unused') },
  });
}

/** Collects stdout until `count` "… listening on host:port" lines have been printed. */
function listeningLines(child: Child, count: number): Promise<Map<string, number>> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const found = new Map<string, number>();
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      for (const m of out.matchAll(/^(\w+) listening on (.*):(\d+)$/gm)) found.set(m[1] as string, Number(m[3]));
      if (found.size >= count) resolve(found);
    });
    child.once('exit', (code) => reject(new Error(`exited with ${code} before listening:\n${out}\n${err}`)));
  });
}

function exited(child: Child): Promise<number | null> {
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

async function output(child: Child): Promise<{ code: number | null; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return { code: await exited(child), stdout, stderr };
}

async function discoverWorks(port: number): Promise<void> {
  const client = await UdpClient.open();
  try {
    await client.send(port, `01${u32(77)}`);
    assert.equal((await client.next(2000)).toString('hex'), `02${loopbackEp(client.port)}`);
  } finally {
    client.close();
  }
}

function tcpConnects(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1', () => {
      sock.destroy();
      resolve();
    });
    sock.once('error', reject);
  });
}

describe('pilot-beacon', () => {
  it('serves on the given address with a health endpoint and stops on SIGTERM', async () => {
    const child = run('pilot-beacon.ts', [
      '-addr',
      '127.0.0.1:0',
      '--health=127.0.0.1:0',
      '-beacon-id',
      '3',
      '-log-level',
      'silent',
    ]);
    const ports = await listeningLines(child, 2);
    const beaconPort = ports.get('beacon');
    const healthPort = ports.get('health');
    assert.ok(beaconPort && healthPort);
    await discoverWorks(beaconPort);
    const res = await fetch(`http://127.0.0.1:${healthPort}/healthz`);
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'ok');
    const done = exited(child);
    child.kill('SIGTERM');
    assert.equal(await done, 0);
  });

  it('listens on every interface when the host is omitted', async () => {
    const child = run('pilot-beacon.ts', ['--addr=:0', '-log-level=silent']);
    const port = (await listeningLines(child, 1)).get('beacon');
    assert.ok(port);
    await discoverWorks(port);
    const done = exited(child);
    child.kill('SIGINT');
    assert.equal(await done, 0);
  });

  it('prints usage for -help and exits 2 on an unknown flag', async () => {
    const help = await output(run('pilot-beacon.ts', ['-help']));
    assert.equal(help.code, 0);
    assert.match(help.stdout, /-addr string/);
    assert.match(help.stdout, /-peers string/);
    const bad = await output(run('pilot-beacon.ts', ['-nope']));
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /flag provided but not defined: -nope/);
  });
});

describe('pilot-rendezvous', () => {
  it('runs a registry and a beacon in one process', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pilot-rdv-'));
    const store = join(dir, 'sub', 'registry.db');
    const child = run('pilot-rendezvous.ts', [
      '-registry-addr',
      '127.0.0.1:0',
      '-beacon-addr',
      '127.0.0.1:0',
      '-store',
      store,
      '-log-level',
      'silent',
    ]);
    try {
      const ports = await listeningLines(child, 2);
      const registryPort = ports.get('registry');
      const beaconPort = ports.get('beacon');
      assert.ok(registryPort && beaconPort);
      await tcpConnects(registryPort);
      await discoverWorks(beaconPort);
      await stat(store);
      const done = exited(child);
      child.kill('SIGTERM');
      assert.equal(await done, 0);
    } finally {
      child.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('startRendezvous starts and closes both servers', async () => {
    const rdv = await startRendezvous({
      registryHost: '127.0.0.1',
      registryPort: 0,
      beaconHost: '127.0.0.1',
      beaconPort: 0,
      storePath: ':memory:',
    });
    try {
      await tcpConnects(rdv.registryPort);
      await discoverWorks(rdv.beaconPort);
    } finally {
      await rdv.close();
    }
    await assert.rejects(tcpConnects(rdv.registryPort));
  });
});
