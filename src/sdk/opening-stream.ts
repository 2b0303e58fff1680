import { Duplex } from 'node:stream';
import type { PilotConn } from '../pilot-net.js';

/** First bytes handed over with the dial at most; what is written beyond follows the handshake. */
const MAX_FIRST_BYTES = 64 * 1024;

type Callback = (err?: Error | null) => void;

/**
 * A stream handed out before its connection exists, as `net.connect()` hands out a socket that is
 * still connecting. What is written in the turn it is created (an HTTP request's head and a short
 * body) goes with the dial as the stream's first bytes, so between pilot-ts nodes it rides in the
 * SYN and the answer comes one round trip after the dial. Later writes wait for the connection. A
 * failed dial destroys the stream with the dial's error, as a refused socket would.
 */
export class OpeningStream extends Duplex {
  /** True until the connection is made (as `net.Socket#connecting`). */
  connecting = true;
  private conn: PilotConn | undefined;
  private readonly early: Buffer[] = [];
  private earlyBytes = 0;
  private readonly waiting: { chunks: Buffer[]; callback: Callback }[] = [];
  private started = false;
  private finalCallback: Callback | undefined;
  private timeout: { ms: number; callback?: () => void } | undefined;
  private noDelay: boolean | undefined;

  constructor(private readonly open: (first: Uint8Array | undefined) => Promise<PilotConn>) {
    super({ allowHalfOpen: true });
    setImmediate(() => this.start());
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: Callback): void {
    this._writev([{ chunk }], callback);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, callback: Callback): void {
    const data = chunks.map((c) => c.chunk);
    if (this.conn) {
      this.forward(data, callback);
      return;
    }
    const size = data.reduce((n, b) => n + b.length, 0);
    if (!this.started && this.waiting.length === 0 && this.earlyBytes + size <= MAX_FIRST_BYTES) {
      // Copied: the write is reported done now, and the writer may refill its buffer before the dial.
      for (const chunk of data) this.early.push(Buffer.from(chunk));
      this.earlyBytes += size;
      callback();
      return;
    }
    this.waiting.push({ chunks: data, callback });
  }

  override _final(callback: Callback): void {
    if (this.conn) this.conn.end(callback);
    else this.finalCallback = callback;
  }

  override _read(): void {
    this.conn?.resume();
  }

  override _destroy(err: Error | null, callback: Callback): void {
    this.conn?.destroy(err ?? undefined);
    for (const w of this.waiting.splice(0)) w.callback(err ?? new Error('stream destroyed'));
    callback(err);
  }

  /** As `net.Socket#setTimeout`: applied to the connection once it exists. */
  setTimeout(ms: number, callback?: () => void): this {
    this.timeout = callback ? { ms, callback } : { ms };
    if (this.conn) this.conn.setTimeout(ms, callback);
    return this;
  }

  setNoDelay(noDelay = true): this {
    this.noDelay = noDelay;
    this.conn?.setNoDelay?.(noDelay);
    return this;
  }

  setKeepAlive(_enable?: boolean, _initialDelay?: number): this {
    return this;
  }

  ref(): this {
    return this;
  }

  unref(): this {
    return this;
  }

  private start(): void {
    if (this.started || this.destroyed) return;
    this.started = true;
    const first = this.early.length > 1 ? Buffer.concat(this.early) : this.early[0];
    this.early.length = 0;
    this.open(first).then(
      (conn) => this.connected(conn),
      (err: unknown) => this.destroy(err instanceof Error ? err : new Error(String(err))),
    );
  }

  private connected(conn: PilotConn): void {
    if (this.destroyed) {
      conn.destroy();
      return;
    }
    this.conn = conn;
    this.connecting = false;
    if (this.timeout) conn.setTimeout(this.timeout.ms, this.timeout.callback);
    if (this.noDelay !== undefined) conn.setNoDelay?.(this.noDelay);
    conn.on('data', (chunk: Buffer) => {
      if (!this.push(chunk)) conn.pause();
    });
    conn.on('end', () => this.push(null));
    conn.on('timeout', () => this.emit('timeout'));
    conn.on('error', (err: Error) => this.destroy(err));
    conn.on('close', () => {
      if (!this.destroyed) this.destroy();
    });
    for (const w of this.waiting.splice(0)) this.forward(w.chunks, w.callback);
    if (this.finalCallback) {
      const done = this.finalCallback;
      this.finalCallback = undefined;
      conn.end(done);
    }
    this.emit('connect');
  }

  private forward(chunks: Buffer[], callback: Callback): void {
    const conn = this.conn as PilotConn;
    for (let i = 0; i < chunks.length - 1; i++) conn.write(chunks[i] as Buffer);
    if (conn.write(chunks.at(-1) as Buffer)) {
      callback();
      return;
    }
    const done = (): void => {
      conn.off('drain', done).off('close', done);
      callback();
    };
    conn.on('drain', done).on('close', done);
  }
}
