import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync, type WriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { binCommand, stopProcess } from '../e2e/cluster.js';
import { collectRun, freePort, okData, startCtl, type AgentEnv, type CtlResult } from '../e2e/cli-harness.js';
import { goBin } from './go-bin.js';

/**
 * Processes for the interop suite: the Go reference's binaries (from $PILOT_GO_BIN) and ours (dist/),
 * each with its output kept in a log file of the run directory, and both `pilotctl`s.
 */

export type Impl = 'go' | 'ts';

/** The environment without the caller's PILOT_* settings, so nothing leaks into the processes. */
function cleanEnv(extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PILOT_')) env[k] = v;
  return { ...env, ...extra };
}

// ---------------------------------------------------------------------------------------------
// Long-running processes

const live = new Set<ChildProcess>();
process.once('exit', () => {
  // Last resort when the runner dies: nothing we started outlives it.
  for (const child of live)
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
});

/** SIGKILLs (by PID) every process of ours still running, e.g. a subscriber whose check failed. */
export async function killStragglers(): Promise<void> {
  const left = [...live].filter((c) => c.exitCode === null && c.signalCode === null);
  await Promise.all(left.map((c) => stopProcess(c, 'SIGKILL')));
}

export interface Proc {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  readonly logPath: string;
  /** Every output line (stdout and stderr), the last 5000. */
  readonly lines: string[];
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  tail(n: number): string;
  stop(): Promise<void>;
}

export function spawnProc(
  name: string,
  cmd: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  logPath: string,
): Proc {
  const child = spawn(cmd, args, { env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(child);
  child.once('exit', () => live.delete(child));
  const log: WriteStream = createWriteStream(logPath, { flags: 'a' });
  log.write(`# ${cmd} ${args.join(' ')}\n`);
  const lines: string[] = [];
  const waiters: { re: RegExp; resolve: (m: RegExpMatchArray) => void }[] = [];
  const onLine = (line: string): void => {
    lines.push(line);
    if (lines.length > 5000) lines.shift();
    for (const w of [...waiters]) {
      const m = line.match(w.re);
      if (m) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  };
  for (const stream of [child.stdout, child.stderr]) {
    if (stream === null) continue;
    stream.on('data', (chunk: Buffer) => log.write(chunk));
    createInterface({ input: stream }).on('line', onLine);
  }
  child.once('exit', (code, signal) => log.end(`# exited ${String(code)} ${String(signal)}\n`));
  if (child.pid === undefined) throw new Error(`${name}: could not start ${cmd}`);
  const tail = (n: number): string => lines.slice(-n).join('\n');
  return {
    name,
    child,
    pid: child.pid,
    logPath,
    lines,
    tail,
    waitFor(re, timeoutMs = 15_000) {
      for (const line of lines) {
        const m = line.match(re);
        if (m) return Promise.resolve(m);
      }
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.splice(
            waiters.findIndex((w) => w.resolve === done),
            1,
          );
          child.off('exit', onExit);
          reject(new Error(`${name}: no line matching ${re} within ${timeoutMs} ms; log ${logPath}:\n${tail(20)}`));
        }, timeoutMs);
        const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
          clearTimeout(timer);
          reject(
            new Error(`${name} exited (${String(code ?? signal)}) before printing ${re}; log ${logPath}:\n${tail(20)}`),
          );
        };
        const done = (m: RegExpMatchArray): void => {
          clearTimeout(timer);
          child.off('exit', onExit);
          resolve(m);
        };
        child.once('exit', onExit);
        waiters.push({ re, resolve: done });
      });
    },
    stop: () => stopProcess(child),
  };
}

/** Our executables run as `node dist/bin/<name>.js`. */
function tsCommand(name: string): [string, string[]] {
  return [process.execPath, binCommand(name)];
}

// ---------------------------------------------------------------------------------------------
// Registry + beacon

export interface Rendezvous {
  readonly impl: Impl;
  readonly registry: string;
  readonly beacon: string;
  readonly proc: Proc;
}

export async function startRendezvous(impl: Impl, dir: string): Promise<Rendezvous> {
  const logPath = join(dir, `rendezvous-${impl}.log`);
  if (impl === 'go') {
    const rport = await freePort('tcp');
    const bport = await freePort('udp');
    const proc = spawnProc(
      'go rendezvous',
      goBin('rendezvous'),
      ['-registry-addr', `127.0.0.1:${rport}`, '-beacon-addr', `127.0.0.1:${bport}`],
      {},
      logPath,
    );
    await Promise.all([proc.waitFor(/msg="registry listening"/), proc.waitFor(/msg="beacon listening"/)]);
    return { impl, registry: `127.0.0.1:${rport}`, beacon: `127.0.0.1:${bport}`, proc };
  }
  const [cmd, pre] = tsCommand('pilot-rendezvous');
  const proc = spawnProc(
    'pilot-rendezvous',
    cmd,
    [...pre, '-registry-addr', '127.0.0.1:0', '-beacon-addr', '127.0.0.1:0', '-store', join(dir, 'registry.db')],
    {},
    logPath,
  );
  const [r, b] = await Promise.all([
    proc.waitFor(/registry listening on .*:(\d+)/),
    proc.waitFor(/beacon listening on .*:(\d+)/),
  ]);
  return { impl, registry: `127.0.0.1:${r[1]}`, beacon: `127.0.0.1:${b[1]}`, proc };
}

// ---------------------------------------------------------------------------------------------
// Daemons

export interface NodeHandle {
  readonly name: string;
  readonly impl: Impl;
  /** HOME of the daemon and of every CLI run for it; the pilot home is `<home>/.pilot`. */
  readonly home: string;
  readonly pilotHome: string;
  readonly socket: string;
  readonly hostname: string;
  readonly public: boolean;
  readonly rv: Rendezvous;
  readonly proc: Proc;
  readonly nodeId: number;
  readonly address: string;
  /** The UDP port of its tunnel (-listen 127.0.0.1:<port>). */
  readonly udpPort: number;
}

export interface DaemonOptions {
  readonly hostname: string;
  readonly public?: boolean;
  readonly extra?: readonly string[];
}

export async function startDaemon(
  impl: Impl,
  dir: string,
  rv: Rendezvous,
  name: string,
  opts: DaemonOptions,
): Promise<NodeHandle> {
  const home = join(dir, name);
  const pilotHome = join(home, '.pilot');
  await mkdir(pilotHome, { recursive: true, mode: 0o700 });
  const socket = join(dir, `${name}.sock`);
  const udpPort = await freePort('udp');
  const listen = `127.0.0.1:${udpPort}`;
  const common = [
    '-registry',
    rv.registry,
    '-beacon',
    rv.beacon,
    '-listen',
    listen,
    '-socket',
    socket,
    '-identity',
    join(pilotHome, 'identity.key'),
    '-keepalive',
    '2s',
    '-hostname',
    opts.hostname,
    ...(opts.public === true ? ['-public'] : []),
    ...(opts.extra ?? []),
  ];
  const logPath = join(dir, `${name}.log`);
  let proc: Proc;
  let address: string;
  let nodeId: number;
  if (impl === 'go') {
    proc = spawnProc(`go daemon ${name}`, goBin('daemon'), common, { HOME: home }, logPath);
    const m = await proc.waitFor(/msg="daemon running" node_id=(\d+) addr=(\S+)/, 20_000);
    nodeId = Number(m[1]);
    address = m[2] as string;
  } else {
    const [cmd, pre] = tsCommand('pilot-daemon');
    proc = spawnProc(
      `pilot-daemon ${name}`,
      cmd,
      [...pre, ...common, '-home', pilotHome],
      { HOME: home, PILOT_HOME: pilotHome },
      logPath,
    );
    const m = await proc.waitFor(/daemon ready (\S+) node (\d+)/, 20_000);
    address = m[1] as string;
    nodeId = Number(m[2]);
  }
  return {
    name,
    impl,
    home,
    pilotHome,
    socket,
    hostname: opts.hostname,
    public: opts.public === true,
    rv,
    proc,
    address,
    nodeId,
    udpPort,
  };
}

// ---------------------------------------------------------------------------------------------
// pilotctl (either implementation) for a node: its socket, its HOME, the run's registry

export interface Run {
  readonly child: ChildProcess;
  readonly done: Promise<CtlResult>;
  stdout(): string;
}

function cliEnv(node: NodeHandle): NodeJS.ProcessEnv {
  return {
    HOME: node.home,
    PILOT_HOME: node.pilotHome,
    PILOT_SOCKET: node.socket,
    PILOT_REGISTRY: node.rv.registry,
    PILOT_BEACON: node.rv.beacon,
  };
}

function startExe(
  cmd: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  timeoutMs: number,
  input?: string,
): Run {
  const child = spawn(cmd, args, {
    env: cleanEnv(env),
    stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  live.add(child);
  child.once('exit', () => live.delete(child));
  return collectRun(child, `${cmd} ${args.join(' ')}`, timeoutMs, input);
}

export interface CliOptions {
  readonly timeoutMs?: number;
  readonly input?: string;
  /** Default true: `--json` is added. */
  readonly json?: boolean;
}

/**
 * Starts `pilotctl args…` of implementation `impl` against `node`'s daemon, with `--json` unless
 * `json: false`.
 * The Go CLI finds `~/.pilot` through HOME, ours through PILOT_HOME; both get the node's.
 */
export function startCli(impl: Impl, node: NodeHandle, args: readonly string[], opts: CliOptions = {}): Run {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const argv = opts.json === false ? [...args] : [...args, '--json'];
  if (impl === 'go') return startExe(goBin('pilotctl'), argv, cliEnv(node), timeoutMs, opts.input);
  const agent: AgentEnv = { name: node.name, home: node.pilotHome, socket: node.socket, env: cleanEnv(cliEnv(node)) };
  const run = startCtl(agent, argv, { timeoutMs, ...(opts.input !== undefined ? { input: opts.input } : {}) });
  live.add(run.child);
  run.child.once('exit', () => live.delete(run.child));
  return run;
}

export function cli(impl: Impl, node: NodeHandle, args: readonly string[], opts: CliOptions = {}): Promise<CtlResult> {
  return startCli(impl, node, args, opts).done;
}

/** The `data` of a successful `--json` run of either CLI (exit 0, one envelope line on stdout). */
export async function cliData(
  impl: Impl,
  node: NodeHandle,
  args: readonly string[],
  opts: CliOptions = {},
): Promise<Record<string, unknown>> {
  const r = await cli(impl, node, args, opts);
  try {
    return okData(r);
  } catch (err) {
    throw new Error(
      `${impl} pilotctl ${args.join(' ')} (daemon ${node.name}, ${node.impl}): ${(err as Error).message}`,
    );
  }
}

/** Runs one of the Go SDK examples to completion. */
export function runExample(name: string, args: readonly string[], timeoutMs = 20_000): Promise<CtlResult> {
  return startExe(goBin(name), args, {}, timeoutMs).done;
}

/** Starts a Go SDK example that serves until stopped. */
export function serveExample(dir: string, name: string, tag: string, args: readonly string[]): Proc {
  return spawnProc(`${name} ${tag}`, goBin(name), args, {}, join(dir, `${name}-${tag}.log`));
}

// ---------------------------------------------------------------------------------------------
// Odds and ends

export async function poll<T>(
  what: string,
  timeoutMs: number,
  everyMs: number,
  probe: () => Promise<T | undefined>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() >= deadline)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last instanceof Error ? `; last error: ${last.message}` : ''}`,
      );
    await sleep(everyMs);
  }
}

/** User + system CPU seconds a process has used so far (Linux /proc). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is the state (field 3); utime and stime are fields 14 and 15.
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Datagrams the kernel dropped because the receive buffer of the UDP socket on 127.0.0.1:<port> was full (/proc/net/udp). */
export function udpDrops(port: number): number | undefined {
  const want = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  for (const line of readFileSync('/proc/net/udp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[1] === want) return Number(f[f.length - 1]);
  }
  return undefined;
}

export function arrayOf(v: unknown, what: string): Record<string, unknown>[] {
  if (!Array.isArray(v)) throw new Error(`${what} is not an array: ${JSON.stringify(v)}`);
  return v as Record<string, unknown>[];
}
