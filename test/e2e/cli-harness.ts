import { isAlive } from '../../src/cli/process.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { binCommand } from './cluster.js';

/** Running `pilotctl` as a separate process, the way a user's shell does. */

export interface CtlResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

export interface CtlOptions {
  /** Written to stdin, which is then closed; without it stdin is /dev/null. */
  readonly input?: string;
  readonly timeoutMs?: number;
}

/** A pilotctl process still running, with its output collected so far. */
export interface CtlRun {
  readonly child: ChildProcess;
  readonly done: Promise<CtlResult>;
  stdout(): string;
  stderr(): string;
}

/** One PILOT_HOME with its socket, registry and beacon: the environment of one agent's shell. */
export interface AgentEnv {
  readonly name: string;
  readonly home: string;
  readonly socket: string;
  readonly env: NodeJS.ProcessEnv;
}

export function agentEnv(dir: string, name: string, registry: string, beacon: string): AgentEnv {
  const home = join(dir, name);
  const socket = join(dir, `${name}.sock`);
  return {
    name,
    home,
    socket,
    env: { PILOT_HOME: home, PILOT_SOCKET: socket, PILOT_REGISTRY: registry, PILOT_BEACON: beacon },
  };
}

/** Starts `pilotctl args…` in the agent's environment; killed with SIGKILL after `timeoutMs`. */
export function startCtl(agent: AgentEnv, args: readonly string[], options: CtlOptions = {}): CtlRun {
  const child = spawn(process.execPath, [...binCommand('pilotctl'), ...args], {
    env: { ...process.env, ...agent.env },
    stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  return collectRun(child, `pilotctl ${args.join(' ')}`, options.timeoutMs ?? 30_000, options.input);
}

/**
 * Follows a spawned command: collects its output, writes `input` (then closes stdin) and resolves
 * when it exits; killed with SIGKILL after `timeoutMs`.
 */
export function collectRun(child: ChildProcess, label: string, timeoutMs: number, input?: string): CtlRun {
  const started = performance.now();
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  if (input !== undefined) child.stdin?.end(input);
  const done = new Promise<CtlResult>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${label}: no exit within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: performance.now() - started });
    });
  });
  done.catch(() => undefined);
  return { child, done, stdout: () => stdout, stderr: () => stderr };
}

export function ctl(agent: AgentEnv, args: readonly string[], options: CtlOptions = {}): Promise<CtlResult> {
  return startCtl(agent, args, options).done;
}

function describe(r: CtlResult): string {
  return `exit ${String(r.code)}${r.signal !== null ? ` (${r.signal})` : ''}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
}

function oneJsonLine(text: string, where: string, r: CtlResult): Record<string, unknown> {
  const lines = text.split('\n').filter((l) => l !== '');
  if (lines.length !== 1) throw new Error(`expected one line on ${where}, got ${lines.length}\n${describe(r)}`);
  const parsed: unknown = JSON.parse(lines[0] as string);
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))
    throw new Error(`${where} is not a JSON object\n${describe(r)}`);
  return parsed as Record<string, unknown>;
}

/** The `data` of a `--json` success: exit 0, one `{"data":…,"status":"ok"}` line on stdout. */
export function okData(r: CtlResult): Record<string, unknown> {
  if (r.code !== 0) throw new Error(`pilotctl failed: ${describe(r)}`);
  const env = oneJsonLine(r.stdout, 'stdout', r);
  if (env.status !== 'ok' || Object.keys(env).join(',') !== 'data,status')
    throw new Error(`not a success envelope: ${describe(r)}`);
  const data = env.data;
  if (data === null || typeof data !== 'object' || Array.isArray(data))
    throw new Error(`data is not an object: ${describe(r)}`);
  return data as Record<string, unknown>;
}

/**
 * A `--json` failure: exit 1 (2 for a usage error), nothing on stdout, one
 * `{"code",…,"status":"error"}` line on stderr.
 */
export function errorEnvelope(r: CtlResult, exitCode = 1): { code: string; message: string; hint?: string } {
  if (r.code !== exitCode) throw new Error(`expected exit ${exitCode}: ${describe(r)}`);
  if (r.stdout !== '') throw new Error(`expected nothing on stdout: ${describe(r)}`);
  const env = oneJsonLine(r.stderr, 'stderr', r);
  const keys = Object.keys(env);
  const expected = 'hint' in env ? 'code,hint,message,status' : 'code,message,status';
  if (env.status !== 'error' || keys.join(',') !== expected) throw new Error(`not an error envelope: ${describe(r)}`);
  if (typeof env.code !== 'string' || typeof env.message !== 'string')
    throw new Error(`bad error envelope: ${describe(r)}`);
  return { code: env.code, message: env.message, ...(typeof env.hint === 'string' ? { hint: env.hint } : {}) };
}

/** A loopback port nobody listens on right now (TCP or UDP), found by binding port 0. */
export function freePort(kind: 'tcp' | 'udp'): Promise<number> {
  if (kind === 'udp') {
    return new Promise((resolve, reject) => {
      const sock = createSocket('udp4');
      sock.once('error', reject);
      sock.bind(0, '127.0.0.1', () => {
        const { port } = sock.address();
        sock.close(() => resolve(port));
      });
    });
  }
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const addr = server.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export async function readPidFile(path: string): Promise<number | undefined> {
  const text = await readFile(path, 'utf8').catch(() => '');
  const n = Number(text.trim());
  return Number.isInteger(n) && n > 0 ? n : undefined;
}

/** Whether the process still runs (an exited child not yet reaped counts as gone). */
export const pidAlive = isAlive;

/** SIGKILLs each live pid and waits (bounded) until it is gone. */
export async function killPids(pids: Iterable<number>): Promise<void> {
  const live = [...new Set(pids)].filter(pidAlive);
  for (const pid of live) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  const deadline = Date.now() + 5000;
  while (live.some(pidAlive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
}
