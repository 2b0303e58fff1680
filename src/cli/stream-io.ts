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
export function readUntil(conn: Duplex, enough: (total: number) => boolean, timeoutMs: number, what = 'read'): Promise<Buffer> {
  const chunks: Buffer[] = [];
  return readStreamUntil(conn, (chunk) => chunks.push(chunk), enough, timeoutMs, what).then((total) => Buffer.concat(chunks, total));
}

/** Like readUntil, but only counts the bytes (for bulk transfers that need not be kept). */
export function countUntil(conn: Duplex, enough: (total: number) => boolean, timeoutMs: number, what = 'read'): Promise<number> {
  return readStreamUntil(conn, () => undefined, enough, timeoutMs, what);
}

function readStreamUntil(conn: Duplex, onChunk: (chunk: Buffer) => void, enough: (total: number) => boolean, timeoutMs: number, what: string): Promise<number> {
  return new Promise((resolve, reject) => {
    let total = 0;
    const finish = (err?: Error): void => {
      clearTimeout(timer);
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
    const onError = (err: Error): void => finish(new PilotError('connection_failed', `${what}: ${err.message}`, undefined, { cause: err }));
    const timer = setTimeout(() => finish(timeoutError(what, timeoutMs)), timeoutMs);
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
    const onAbort = (): void => done(signal.reason instanceof Error ? signal.reason : new PilotError('timeout', 'timed out'));
    if (signal.aborted) return onAbort();
    conn.once('drain', onDrain).once('close', onClose).once('error', done);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Pulls items from `source` until `handle` returns false or `timeoutMs` (0 = never) passes,
 * whether or not the source honours cancellation. Returns true when the time ran out.
 */
export async function consumeUntil<T>(source: AsyncIterable<T>, timeoutMs: number, handle: (item: T) => Promise<boolean> | boolean): Promise<boolean> {
  const it = source[Symbol.asyncIterator]();
  const deadline = timeoutMs > 0 ? Date.now() + timeoutMs : Infinity;
  let timer: NodeJS.Timeout | undefined;
  try {
    for (;;) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) return true;
      const expired = new Promise<'expired'>((resolve) => {
        if (remaining !== Infinity) timer = setTimeout(() => resolve('expired'), remaining);
      });
      const next = await Promise.race([it.next(), expired]);
      clearTimeout(timer);
      if (next === 'expired') return true;
      if (next.done === true) return false;
      if (!(await handle(next.value))) return false;
    }
  } finally {
    clearTimeout(timer);
    void Promise.resolve(it.return?.()).catch(() => undefined);
  }
}

/** Everything a readable stream yields until it ends. */
export async function readAll(input: NodeJS.ReadableStream, maxBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of input) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk as Uint8Array);
    total += buf.length;
    if (total > maxBytes) throw new PilotError('invalid_argument', `standard input is larger than ${maxBytes} bytes`, 'use pipe mode (without --json) for streams');
    chunks.push(buf);
  }
  return Buffer.concat(chunks, total);
}
