import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { readFile, unlink } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { SERVER_NODE_FLAGS } from '../config/node-flags.js';
import { writeFileAtomic } from '../crypto/atomic-file.js';
import { PilotError } from '../errors.js';
import { isAlive } from '../process-alive.js';
import type { CliContext } from './context.js';

/** Background processes started by the CLI: pid files, liveness, start and stop. */

export { isAlive };

export async function readPid(path: string): Promise<number | undefined> {
  try {
    const text = (await readFile(path, 'utf8')).trim();
    return /^\d+$/.test(text) && Number(text) > 0 ? Number(text) : undefined;
  } catch {
    return undefined;
  }
}

export async function writePid(path: string, pid: number): Promise<void> {
  await writeFileAtomic(path, `${pid}\n`, { mode: 0o600 });
}

export async function removePid(path: string, onlyIf?: number): Promise<void> {
  if (onlyIf !== undefined && (await readPid(path)) !== onlyIf) return;
  await unlink(path).catch(() => undefined);
}

/** SIGTERM, up to `graceMs` to exit, then SIGKILL. */
export async function terminate(pid: number, graceMs: number): Promise<{ forced: boolean }> {
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return { forced: false };
  }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!isAlive(pid)) return { forced: false };
    await sleep(50);
  }
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return { forced: false };
  }
  for (let i = 0; i < 40 && isAlive(pid); i++) await sleep(50);
  return { forced: true };
}

/** True when something accepts TCP connections on host:port within `timeoutMs`. */
export function tcpAnswers(hostPort: string, timeoutMs = 500): Promise<boolean> {
  const colon = hostPort.lastIndexOf(':');
  const host = hostPort.slice(0, colon).replace(/^\[|\]$/g, '') || '127.0.0.1';
  const port = Number(hostPort.slice(colon + 1));
  return new Promise((resolve) => {
    const sock = createConnection({ host, port });
    const done = (ok: boolean): void => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

/**
 * Starts the server `script` with the CLI's own node flags and the servers' (SERVER_NODE_FLAGS),
 * detached, its standard error (the log) appended to `logFile`.
 */
export function spawnDetached(ctx: CliContext, script: string, args: readonly string[], logFile: string): ChildProcess {
  const fd = openSync(logFile, 'a', 0o600);
  try {
    const child = spawn(ctx.node.execPath, [...ctx.node.execArgv, ...SERVER_NODE_FLAGS, script, ...args], {
      detached: true,
      // Standard output carries only what the log already holds (e.g. "daemon ready"): the log
      // file keeps one format. Standard error carries the log itself and early errors.
      stdio: ['ignore', 'ignore', fd],
      env: ctx.env,
    });
    child.unref();
    return child;
  } finally {
    closeSync(fd);
  }
}

/** Follows a just-started child: resolves with its exit code if it exits, never rejects. */
export function exitWatch(child: ChildProcess): { readonly exited: () => number | null | undefined } {
  let code: number | null | undefined;
  child.once('exit', (c, signal) => {
    code = c ?? (signal !== null ? -1 : null);
  });
  child.once('error', () => {
    code = -1;
  });
  return { exited: () => code };
}

/**
 * Polls `probe` until it returns a value, the child exits, or `timeoutMs` passes.
 * A child that exits early is reported with its log file so the cause is one step away.
 */
export async function waitUntil<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  options: {
    timeoutMs: number;
    child?: { exited: () => number | null | undefined };
    logFile: string;
    signal?: AbortSignal;
  },
): Promise<T> {
  const deadline = Date.now() + options.timeoutMs;
  let exitSeen = false;
  for (;;) {
    if (options.signal?.aborted === true) throw options.signal.reason;
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    const code = options.child?.exited();
    // One more probe after the exit: a concurrent start may have won the race and be serving.
    if (code !== undefined && !exitSeen) {
      exitSeen = true;
      continue;
    }
    if (code !== undefined) {
      const reason = await lastPlainLine(options.logFile);
      const detail = reason === undefined ? '' : `: ${reason}`;
      throw new PilotError(
        'connection_failed',
        `${what} exited during start-up (code ${code ?? 'unknown'})${detail}`,
        `see the log: ${options.logFile}`,
      );
    }
    if (Date.now() >= deadline) {
      throw new PilotError(
        'timeout',
        `${what} did not become ready within ${Math.round(options.timeoutMs / 1000)}s`,
        `see the log: ${options.logFile}`,
      );
    }
    await sleep(150);
  }
}

/** The last line of a log that is not a structured JSON record: what the process printed on exit. */
async function lastPlainLine(logFile: string): Promise<string | undefined> {
  const text = await readFile(logFile, 'utf8').catch(() => '');
  const lines = text
    .slice(-8192)
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('{'));
  return lines.at(-1);
}
