import { Duplex } from 'node:stream';
import { PilotError } from '../errors.js';
import type { Addr } from '../protocol/address.js';
import { formatAddr } from '../protocol/address.js';
import type { PilotConn } from '../pilot-net.js';

/** Largest data part of one IPC Send message; bigger writes are split. */
export const MAX_SEND_CHUNK = 64 * 1024;
/** Received bytes a Conn holds for a reader that does not read before it gives up on the connection. */
export const DEFAULT_MAX_UNREAD = 8 * 1024 * 1024;

/** What a Conn needs from the driver that owns it. */
export interface ConnLink {
  /** Writes one Send; false means wait for `onDrain` before writing more. Throws when the daemon is gone. */
  send(connId: number, data: Uint8Array): boolean;
  onDrain(callback: (err: Error | null) => void): void;
  /** Sends Close; settles (never rejects) when the daemon answered. */
  close(connId: number): Promise<void>;
  /** The Conn is finished and must not receive anything more. */
  release(conn: Conn): void;
}

export interface ConnEndpoints {
  readonly id: number;
  readonly localAddr: Addr;
  /** 0 when unknown (the daemon does not report a dialer's ephemeral port). */
  readonly localPort: number;
  readonly remoteAddr: Addr;
  readonly remotePort: number;
}

export interface ConnOptions {
  maxUnread?: number;
}

/**
 * Gives a Conn made ahead of its DialOK (see Driver.dial) the daemon's connection id. Not part of
 * the package's exports.
 */
export const assignConnId = Symbol('assignConnId');

/**
 * A pilot stream connection over IPC. There is no half-close in the protocol: ending the writable
 * side closes the connection (the daemon sends FIN), and the end of the readable side ends the
 * writable side too.
 */
export class Conn extends Duplex implements PilotConn {
  #id: number;
  readonly localAddr: Addr;
  readonly localPort: number;
  readonly remoteAddr: Addr;
  readonly remotePort: number;
  private readonly maxUnread: number;
  private closeSent = false;
  private readEnded = false;
  private idleMs = 0;
  private idleTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly link: ConnLink,
    ends: ConnEndpoints,
    options: ConnOptions = {},
  ) {
    super({ allowHalfOpen: true });
    this.#id = ends.id;
    this.localAddr = ends.localAddr;
    this.localPort = ends.localPort;
    this.remoteAddr = ends.remoteAddr;
    this.remotePort = ends.remotePort;
    this.maxUnread = options.maxUnread ?? DEFAULT_MAX_UNREAD;
  }

  /** The daemon's number for this connection. */
  get id(): number {
    return this.#id;
  }

  [assignConnId](id: number): void {
    this.#id = id;
  }

  /** `addr:port` of the remote end, for logs. */
  get remote(): string {
    return `${formatAddr(this.remoteAddr)}:${this.remotePort}`;
  }

  /** Data the daemon delivered (Recv push). */
  receive(data: Uint8Array): void {
    if (this.readEnded || this.destroyed || data.byteLength === 0) return;
    this.touch();
    this.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    if (this.readableLength > this.maxUnread) {
      // The protocol has no per-connection flow control towards the driver, so an unread
      // connection would otherwise grow without limit.
      this.destroy(
        new PilotError('too_large', `connection ${this.id}: more than ${this.maxUnread} received bytes left unread`),
      );
    }
  }

  /** The daemon closed the receive side (CloseOK push). */
  remoteClosed(): void {
    if (this.readEnded) return;
    this.readEnded = true;
    if (!this.destroyed) this.push(null);
  }

  /** The IPC connection is gone: nothing can be sent any more. */
  detach(err?: Error): void {
    this.closeSent = true;
    this.readEnded = true;
    this.destroy(err);
  }

  setTimeout(ms: number, callback?: () => void): this {
    if (callback) {
      if (ms === 0) this.off('timeout', callback);
      else this.once('timeout', callback);
    }
    this.idleMs = ms;
    this.touch();
    return this;
  }

  /** Accepted for `net.Socket` compatibility (http uses them); the daemon owns these settings. */
  setNoDelay(_noDelay?: boolean): this {
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

  override _read(): void {
    // Data is pushed as the daemon delivers it; see receive().
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.sendAll(chunk, callback);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (err?: Error | null) => void): void {
    this.sendAll(Buffer.concat(chunks.map((c) => c.chunk)), callback);
  }

  override _final(callback: (err?: Error | null) => void): void {
    void this.sendClose().then(() => {
      this.remoteClosed();
      callback();
    });
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.clearIdle();
    void this.sendClose();
    this.link.release(this);
    callback(err);
  }

  private sendAll(data: Buffer, callback: (err?: Error | null) => void): void {
    if (this.closeSent) {
      callback(new PilotError('connection_failed', `connection ${this.id} is closed`));
      return;
    }
    this.touch();
    try {
      for (let offset = 0; offset < data.length; offset += MAX_SEND_CHUNK) {
        this.link.send(this.id, data.subarray(offset, offset + MAX_SEND_CHUNK));
      }
    } catch (err) {
      callback(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    // Called back on a later tick even when the socket has room: writes made meanwhile are then
    // handed over together (_writev) and travel as one IPC frame instead of one frame each.
    this.link.onDrain((err) => process.nextTick(callback, err));
  }

  private sendClose(): Promise<void> {
    if (this.closeSent) return Promise.resolve();
    this.closeSent = true;
    return this.link.close(this.id);
  }

  private touch(): void {
    this.clearIdle();
    if (this.idleMs <= 0 || this.destroyed) return;
    this.idleTimer = setTimeout(() => this.emit('timeout'), this.idleMs);
    this.idleTimer.unref();
  }

  private clearIdle(): void {
    if (this.idleTimer !== undefined) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }
}
