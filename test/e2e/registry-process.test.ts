import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { Identity } from '../../src/crypto/identity.js';
import { RegistryClient } from '../../src/registry/client.js';
import { RawConn } from './registry-helpers.js';

const BIN = join(import.meta.dirname, '../../src/bin/pilot-registry.ts');

interface Running {
  readonly child: ChildProcess;
  readonly port: number;
}

/** Starts the registry binary and waits for its `registry listening on host:port` line. */
function startRegistry(store: string, extra: string[] = []): Promise<Running> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', BIN, '-addr', '127.0.0.1:0', '-store', store, '-log-level', 'warn', ...extra],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`registry did not start: ${stderr}`)), 10_000);
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    lines.on('line', (line) => {
      const m = /^registry listening on .*:(\d+)$/.exec(line);
      if (m) {
        clearTimeout(timer);
        resolve({ child, port: Number(m[1]) });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`registry exited with ${code}: ${stderr}`));
    });
  });
}

function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null)
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

describe('pilot-registry process', () => {
  let dir = '';
  const children: ChildProcess[] = [];
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pilot-registry-'));
  });
  after(async () => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });

  it('loses nothing it acknowledged when killed with SIGKILL and restarted on the same store', async () => {
    const store = join(dir, 'state', 'registry.db');
    const first = await startRegistry(store);
    children.push(first.child);
    const alice = Identity.generate();
    const bob = Identity.generate();
    const a = new RegistryClient({ address: `127.0.0.1:${first.port}`, identity: alice, timeoutMs: 3000 });
    const b = new RegistryClient({ address: `127.0.0.1:${first.port}`, identity: bob, timeoutMs: 3000 });
    assert.equal((await a.register({ listenAddr: '127.0.0.1:4000' })).node_id, 1);
    assert.equal((await b.register({ listenAddr: '127.0.0.1:4001' })).node_id, 2);
    await a.setHostname('alice');
    await a.setTags(['ml']);
    await a.reportTrust(2);
    await b.reportTrust(1);
    await a.requestHandshake(2, 'before the crash');
    a.close();
    b.close();

    first.child.kill('SIGKILL');
    assert.equal((await exited(first.child)).signal, 'SIGKILL');

    const second = await startRegistry(store);
    children.push(second.child);
    const a2 = new RegistryClient({ address: `127.0.0.1:${second.port}`, identity: alice, timeoutMs: 3000 });
    const b2 = new RegistryClient({ address: `127.0.0.1:${second.port}`, identity: bob, timeoutMs: 3000 });
    // Without re-registering, the stored nodes are online again (fresh grace period after restart).
    a2.nodeId = 1;
    b2.nodeId = 2;
    assert.equal((await a2.resolveHostname('alice')).node_id, 1);
    assert.equal((await b2.resolve(1)).real_addr, '127.0.0.1:4000', 'the trust pair survived');
    const polled = await b2.pollHandshakes();
    assert.equal((polled.requests as { justification: string }[])[0]?.justification, 'before the crash');

    assert.equal((await a2.register({ listenAddr: '127.0.0.1:4000' })).node_id, 1, 'same id for the same key');
    const look = await b2.lookup(1);
    assert.equal(look.hostname, 'alice');
    assert.deepEqual(look.tags, ['ml']);
    const carol = new RegistryClient({
      address: `127.0.0.1:${second.port}`,
      identity: Identity.generate(),
      timeoutMs: 3000,
    });
    assert.equal((await carol.register({ listenAddr: ':4002' })).node_id, 3, 'the id counter survived');

    const bad = await RawConn.open(second.port);
    bad.write(Buffer.from([0xff, 0xff, 0xff, 0xff, 1, 2, 3]));
    assert.equal((await bad.next())?.code, 'protocol');
    await bad.waitClosed();
    assert.equal((await carol.heartbeat()).type, 'heartbeat_ok', 'the process survived the malformed frame');

    for (const c of [a2, b2, carol]) c.close();
    second.child.kill('SIGTERM');
    assert.deepEqual(await exited(second.child), { code: 0, signal: null }, 'SIGTERM closes gracefully');
  });

  it('prints usage for -help and refuses unknown flags', async () => {
    const help = spawn(process.execPath, ['--import', 'tsx', BIN, '--help'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    help.stdout.on('data', (c: Buffer) => (out += c.toString()));
    assert.equal((await exited(help)).code, 0);
    assert.match(out, /-addr/);
    assert.match(out, /-admin-token/);
    assert.match(out, /-tls\n.*generated once and kept next to the store/);
    assert.match(out, /-tls-cert string/);
    assert.match(out, /-tls-key string/);
    for (const flag of ['-beacon string', '-log-format string', '-config string']) assert.ok(out.includes(flag), flag);
    const bad = spawn(process.execPath, ['--import', 'tsx', BIN, '-nope'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    bad.stderr.on('data', (c: Buffer) => (err += c.toString()));
    assert.equal((await exited(bad)).code, 2);
    assert.match(err, /flag provided but not defined: -nope/);
  });
});
