import type { Duplex } from 'node:stream';
import { PilotError } from '../errors.js';

/** Small waiting primitives over connections and async iterables, each bounded by a timeout. */

function timeoutError(what: string, ms: number): PilotError {
  return new PilotError('timeout', `${what} timed out after ${formatMs(ms)}`);
}

export function formatMs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

/**
 * Reads until `enough(total)` holds, the stream ends, or `timeoutMs` passes (then rejects with a
 * `timeout` error). Resolves with every byte read so far.
 */
export function readUntil(
  conn: Duplex,
  enough: (total: number) => boolean,
  timeoutMs: number,
  what = 'read',
  signal?: AbortSignal,
): Promise<Buffer> {
  const chunks: Buffer[] = [];
  return readStreamUntil(conn, (chunk) => chunks.push(chunk), enough, timeoutMs, what, signal).then((total) =>
    Buffer.concat(chunks, total),
  );
}

/** Like readUntil, but only counts the bytes (for bulk transfers that need not be kept). */
export function countUntil(
  conn: Duplex,
  enough: (total: number) => boolean,
  timeoutMs: number,
  what = 'read',
  signal?: AbortSignal,
): Promise<number> {
  return readStreamUntil(conn, () => undefined, enough, timeoutMs, what, signal);
}

/** `signal` (Ctrl-C) rejects with its reason. */
function readStreamUntil(
  conn: Duplex,
  onChunk: (chunk: Buffer) => void,
  enough: (total: number) => boolean,
  timeoutMs: number,
  what: string,
  signal?: AbortSignal,
): Promise<number> {
  return new Promise((resolve, reject) => {
    let total = 0;
    const onAbort = (): void => finish(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
    const finish = (err?: Error): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      conn.off('data', onData).off('end', onEnd).off('close', onEnd).off('error', onError);
      conn.pause();
      if (err) reject(err);
      else resolve(total);
    };
    const onData = (chunk: Buffer | string): void => {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      onChunk(buf);
      total += buf.length;
      if (enough(total)) finish();
    };
    const onEnd = (): void => finish();
    const onError = (err: Error): void =>
      finish(new PilotError('connection_failed', `${what}: ${err.message}`, undefined, { cause: err }));
    const timer = setTimeout(() => finish(timeoutError(what, timeoutMs)), timeoutMs);
    if (signal?.aborted === true) return onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });
    conn.on('data', onData).once('end', onEnd).once('close', onEnd).once('error', onError);
    conn.resume();
  });
}

/** One message as the stdio convention defines it: the first delivered chunk (empty if the peer closed). */
export function readOnce(conn: Duplex, timeoutMs: number, what = 'waiting for a response'): Promise<Buffer> {
  return readUntil(conn, (n) => n > 0, timeoutMs, what);
}

/** Resolves when the writable side drains; rejects if the connection closes or `signal` aborts. */
export function drained(conn: Duplex, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: Error): void => {
      conn.off('drain', onDrain).off('close', onClose).off('error', done);
      signal.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve();
    };
    const onDrain = (): void => done();
    const onClose = (): void => done(new PilotError('connection_failed', 'connection closed by the peer'));
    const onAbort = (): void =>
      done(signal.reason instanceof Error ? signal.reason : new PilotError('timeout', 'timed out'));
    if (signal.aborted) return onAbort();
    conn.once('drain', onDrain).once('close', onClose).once('error', done);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** How a consumeUntil ended: the handler or the source finished, the time ran out, or Ctrl-C. */
export type ConsumeEnd = 'done' | 'timeout' | 'interrupted';

/**
 * Pulls items from `source` until `handle` returns false, `timeoutMs` (0 = never) passes or
 * `signal` aborts, whether or not the source honours cancellation.
 */
export async function consumeUntil<T>(
  source: AsyncIterable<T>,
  timeoutMs: number,
  handle: (item: T) => Promise<boolean> | boolean,
  signal?: AbortSignal,
): Promise<ConsumeEnd> {
  const it = source[Symbol.asyncIterator]();
  const deadline = timeoutMs > 0 ? Date.now() + timeoutMs : Infinity;
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<'interrupted'>((resolve) => {
    onAbort = () => resolve('interrupted');
    signal?.addEventListener('abort', onAbort, { once: true });
  });
  try {
    for (;;) {
      if (signal?.aborted === true) return 'interrupted';
      const remaining = deadline - Date.now();
      if (remaining <= 0) return 'timeout';
      const expired = new Promise<'timeout'>((resolve) => {
        if (remaining !== Infinity) timer = setTimeout(() => resolve('timeout'), remaining);
      });
      const next = await Promise.race([it.next(), expired, aborted]);
      clearTimeout(timer);
      if (next === 'timeout' || next === 'interrupted') return next;
      if (next.done === true) return 'done';
      if (!(await handle(next.value))) return 'done';
    }
  } finally {
    clearTimeout(timer);
    if (onAbort !== undefined) signal?.removeEventListener('abort', onAbort);
    void Promise.resolve(it.return?.()).catch(() => undefined);
  }
}

/** Waits `ms`, or less when `signal` aborts first (never rejects). */
export function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted === true || ms <= 0) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** Everything a readable stream yields until it ends. */
export async function readAll(input: NodeJS.ReadableStream, maxBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of input) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk as Uint8Array);
    total += buf.length;
    if (total > maxBytes)
      throw new PilotError(
        'invalid_argument',
        `standard input is larger than ${maxBytes} bytes`,
        'use pipe mode (without --json) for streams',
      );
    chunks.push(buf);
  }
  return Buffer.concat(chunks, total);
}
