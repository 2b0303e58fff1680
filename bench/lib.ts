/**
 * Shared pieces of the end-to-end benchmarks: bounded waits, a whole-run watchdog, a two-daemon
 * cluster with mutual trust, and running the real `pilotctl` against one of its daemons.
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { Driver } from '../src/sdk/driver.js';
import { binCommand, Cluster, type DaemonHandle } from '../test/e2e/cluster.js';

export class BenchError extends Error {}

/** Rejects with "<what> timed out after N ms" unless `promise` settles first. */
export async function withTimeout<T>(what: string, ms: number, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new BenchError(`${what} timed out after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

export async function poll<T>(what: string, ms: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new BenchError(`${what} timed out after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export const progress = (line: string): void => console.log(line);

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] as number;
}

export const round = (n: number, digits = 3): number => Math.round(n * 10 ** digits) / 10 ** digits;

export interface Pair {
  readonly cluster: Cluster;
  readonly a: DaemonHandle;
  readonly b: DaemonHandle;
  readonly da: Driver;
  readonly db: Driver;
  close(): Promise<void>;
}

/** Rendezvous + daemons a and b on 127.0.0.1, trusting each other (a asks, b approves). */
export async function trustedPair(timeoutMs = 30_000, daemonArgs: string[] = []): Promise<Pair> {
  const cluster = await withTimeout('starting the rendezvous', timeoutMs, Cluster.start());
  let da: Driver | undefined;
  let db: Driver | undefined;
  const close = async (): Promise<void> => {
    await Promise.all([da?.close().catch(() => undefined), db?.close().catch(() => undefined)]);
    await cluster.stop();
  };
  try {
    const [a, b] = await withTimeout(
      'starting two daemons',
      timeoutMs,
      Promise.all([cluster.addDaemon('a', daemonArgs), cluster.addDaemon('b', daemonArgs)]),
    );
    da = await withTimeout('connecting to daemon a', timeoutMs, Driver.connect(a.socket));
    db = await withTimeout('connecting to daemon b', timeoutMs, Driver.connect(b.socket));
    const [x, y] = [da, db];
    await withTimeout('handshake a → b', timeoutMs, x.handshake(b.nodeId, 'bench'));
    await poll('the request at b', timeoutMs, async () =>
      (await y.pending()).some((p) => p.node_id === a.nodeId) ? true : undefined,
    );
    await withTimeout('approval at b', timeoutMs, y.approve(a.nodeId));
    await poll('a trusting b', timeoutMs, async () =>
      (await x.trusted()).some((t) => t.node_id === b.nodeId) ? true : undefined,
    );
    // Trust lists can show the peer a moment before the registry lets a resolve b: wait for a dial.
    await poll('a first stream a → b', timeoutMs, async () => {
      const conn = await x.dial(b.address, 7, { timeoutMs: 2000 });
      conn.destroy();
      return true;
    });
    return { cluster, a, b, da: x, db: y, close };
  } catch (err) {
    await close().catch(() => undefined);
    throw err;
  }
}

export interface CtlOutput {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `pilotctl args…` against `daemon` (its socket and home); SIGKILLed after `timeoutMs`. */
export function runPilotctl(daemon: DaemonHandle, args: readonly string[], timeoutMs: number): Promise<CtlOutput> {
  const child = spawn(
    process.execPath,
    [...(process.env.PILOT_TEST_NODE_ARGS?.split(' ').filter(Boolean) ?? []), ...binCommand('pilotctl'), ...args],
    {
      env: { ...process.env, PILOT_HOME: daemon.home, PILOT_SOCKET: daemon.socket },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new BenchError(`pilotctl ${args.join(' ')} timed out after ${timeoutMs} ms; stderr: ${stderr.trim()}`));
    }, timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The `data` object of a successful `pilotctl … --json`, or a BenchError naming what failed. */
export function jsonData(what: string, out: CtlOutput): Record<string, unknown> {
  const line = out.stdout.trim().split('\n').at(-1) ?? '';
  let env: unknown;
  try {
    env = JSON.parse(line);
  } catch {
    env = undefined;
  }
  const data = typeof env === 'object' && env !== null ? (env as Record<string, unknown>).data : undefined;
  if (out.code !== 0 || typeof data !== 'object' || data === null) {
    throw new BenchError(`${what} failed (exit ${String(out.code)}): ${out.stderr.trim() || out.stdout.trim()}`);
  }
  return data as Record<string, unknown>;
}

/**
 * Runs `body`, always running `cleanup` after it; a watchdog ends the process if the whole run
 * exceeds `totalMs`. Failures print one clear line on stderr and exit 1.
 */
export function runBench(
  name: string,
  totalMs: number,
  body: (onCleanup: (fn: () => Promise<void>) => void) => Promise<void>,
): void {
  const cleanups: (() => Promise<void>)[] = [];
  const cleanup = async (): Promise<void> => {
    for (const fn of cleanups.splice(0).reverse()) await withTimeout('cleanup', 15_000, fn()).catch(() => undefined);
  };
  const watchdog = setTimeout(() => {
    process.stderr.write(`${name}: the whole run exceeded ${totalMs} ms, giving up\n`);
    void cleanup().finally(() => process.exit(1));
  }, totalMs);
  body((fn) => cleanups.push(fn))
    .then(async () => {
      clearTimeout(watchdog);
      await cleanup();
      process.exit(0);
    })
    .catch(async (err: unknown) => {
      clearTimeout(watchdog);
      process.stderr.write(`${name}: ${err instanceof Error ? err.message : String(err)}\n`);
      await cleanup();
      process.exit(1);
    });
}

/** Linux's clock tick for /proc CPU times (USER_HZ, 100 on every mainstream kernel). */
const TICK_MS = 10;

function procCpuMs(statPath: string, fields: readonly [number, number]): number | undefined {
  try {
    const stat = readFileSync(statPath, 'utf8');
    // Fields after the parenthesised command name, which may itself contain spaces.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(rest[fields[0]]) + Number(rest[fields[1]])) * TICK_MS;
  } catch {
    return undefined;
  }
}

/** CPU time (user + system) a process has used so far; undefined where /proc is not available. */
export const processCpuMs = (pid: number | undefined): number | undefined =>
  pid === undefined ? undefined : procCpuMs(`/proc/${pid}/stat`, [11, 12]);

/** CPU time used by this process's children that have exited and been waited for (e.g. pilotctl runs). */
export const exitedChildrenCpuMs = (): number | undefined => procCpuMs('/proc/self/stat', [13, 14]);

/**
 * CPU time (ms, nanosecond resolution) all threads of a process have run so far, from the
 * scheduler's counters (/proc/<pid>/task/<tid>/schedstat); falls back to processCpuMs (10 ms ticks).
 * Precise enough to charge a single ping.
 */
export function processCpuPreciseMs(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    let ns = 0;
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
    }
    if (Number.isFinite(ns)) return ns / 1e6;
  } catch {
    // Threads may come and go between the listing and the read; fall back.
  }
  return processCpuMs(pid);
}
