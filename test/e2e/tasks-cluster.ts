import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeIdentityFile, type Identity } from '../../src/crypto/identity.js';
import { RegistryClient } from '../../src/registry/client.js';
import type { Driver } from '../../src/sdk/driver.js';
import { binCommand, Cluster, spawnBin, stopProcess, type DaemonHandle } from './cluster.js';
import { until } from '../wait.js';

/** Shared by the task e2e tests and bench/tasks.ts: a cluster whose registry has an admin token. */

export const ADMIN_TOKEN = 'tasks-e2e-admin';

/**
 * A cluster whose rendezvous runs with `-admin-token` (restarted on the same ports before any
 * daemon joins). With `clockFile`, the registry's task-evidence clock follows that offset file.
 */
export async function startTaskCluster(clockFile?: (dir: string) => string): Promise<Cluster> {
  const cluster = await Cluster.start();
  await stopProcess(cluster.rendezvous.child);
  const env = clockFile ? { PILOT_TEST_CLOCK_OFFSET_FILE: clockFile(cluster.dir) } : {};
  cluster.rendezvous = spawnBin(
    'pilot-rendezvous',
    [
      '-registry-addr',
      `127.0.0.1:${cluster.registryPort}`,
      '-beacon-addr',
      `127.0.0.1:${cluster.beaconPort}`,
      '-store',
      join(cluster.dir, 'registry.db'),
      '-admin-token',
      ADMIN_TOKEN,
    ],
    env,
  );
  await cluster.rendezvous.waitFor(/registry listening on/);
  await cluster.rendezvous.waitFor(/beacon listening on/);
  return cluster;
}

/** Adds a daemon whose task clock runs `offsetFile` ms ahead (PILOT_TEST_CLOCK_OFFSET_FILE). */
export async function addDaemonWithClock(
  cluster: Cluster,
  name: string,
  offsetFile: string | undefined,
  extra: string[] = [],
): Promise<DaemonHandle> {
  const saved = process.env.PILOT_TEST_CLOCK_OFFSET_FILE;
  if (offsetFile !== undefined) process.env.PILOT_TEST_CLOCK_OFFSET_FILE = offsetFile;
  try {
    // The daemon inherits process.env when spawned: call this sequentially, never concurrently.
    return await cluster.addDaemon(name, extra);
  } finally {
    if (saved === undefined) delete process.env.PILOT_TEST_CLOCK_OFFSET_FILE;
    else process.env.PILOT_TEST_CLOCK_OFFSET_FILE = saved;
  }
}

export async function setClock(file: string, offsetMs: number): Promise<void> {
  await writeFile(file, String(offsetMs));
}

/** a asks, b approves; returns once both sides trust each other. */
export async function makeTrust(da: Driver, db: Driver, a: DaemonHandle, b: DaemonHandle): Promise<void> {
  await da.handshake(b.nodeId, 'tasks e2e');
  await until('pending request', async () =>
    (await db.pending()).some((p) => p.node_id === a.nodeId) ? true : undefined,
  );
  await db.approve(a.nodeId);
  await until('trust', async () => ((await da.trusted()).some((t) => t.node_id === b.nodeId) ? true : undefined));
}

export function registry(cluster: Cluster): RegistryClient {
  return new RegistryClient({ address: cluster.registry });
}

export async function score(reg: RegistryClient, node: number): Promise<number> {
  const r = await reg.getPoloScore(node);
  return typeof r.polo_score === 'number' ? r.polo_score : Number.NaN;
}

export async function setScore(reg: RegistryClient, node: number, value: number): Promise<void> {
  await reg.request({ type: 'set_polo_score', node_id: node, polo_score: value, admin_token: ADMIN_TOKEN });
}

export async function identityOf(d: DaemonHandle): Promise<Identity> {
  return decodeIdentityFile(await readFile(join(d.home, 'identity.key'), 'utf8'));
}

export async function readJson(path: string): Promise<Record<string, unknown>> {
  return JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
}

export interface CtlResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs pilotctl against a daemon's socket. */
export function pilotctl(d: DaemonHandle, args: string[]): Promise<CtlResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...binCommand('pilotctl'), ...args], {
      env: { ...process.env, PILOT_SOCKET: d.socket, PILOT_HOME: d.home },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** `pilotctl --json …` → the `data` of the success envelope (throws with stderr otherwise). */
export async function ctlJson(d: DaemonHandle, args: string[]): Promise<Record<string, unknown>> {
  const r = await pilotctl(d, ['--json', ...args]);
  if (r.code !== 0) throw new Error(`pilotctl ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  const env = JSON.parse(r.stdout.trim()) as { data: Record<string, unknown>; status: string };
  return env.data;
}
