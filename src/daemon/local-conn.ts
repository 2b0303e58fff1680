import { Duplex } from 'node:stream';
import { PilotError, remoteFailure } from '../errors.js';
import type { Addr } from '../protocol/address.js';
import type { PilotConn } from '../pilot-net.js';
import type { CloseReason } from '../transport/types.js';

/** What a connection needs from the stack that owns it. */
export interface ConnOps {
  /** `copy` false hands `data` over: the caller never changes it afterwards. */
  write(connId: number, data: Uint8Array, copy?: boolean): number;
  read(connId: number, maxBytes: number): Uint8Array | null;
  close(connId: number): void;
  abort(connId: number): void;
  setNagle(connId: number, on: boolean): void;
}

const READ_CHUNK = 64 * 1024;

export interface ConnEnds {
  localAddr: Addr;
  localPort: number;
  remoteAddr: Addr;
  remotePort: number;
}

function closeError(reason: CloseReason): PilotError {
  switch (reason) {
    case 'reset':
      return remoteFailure('connection_failed', 'connection reset by peer');
    case 'refused':
      return remoteFailure('refused', 'connection refused');
    case 'dial_timeout':
      return remoteFailure('timeout', 'dial timed out');
    case 'retransmit_timeout':
      return remoteFailure('timeout', 'peer stopped acknowledging data');
    case 'idle_timeout':
      return remoteFailure('timeout', 'connection idle for too long');
    default:
      return remoteFailure('connection_failed', `connection closed (${reason})`);
  }
}

/**
 * An in-process stream connection on the daemon's transport engine, with the PilotConn shape the
 * SDK gives applications over IPC. Backpressure follows the engine's buffers both ways.
 */
export class LocalConn extends Duplex implements PilotConn {
  readonly localAddr: Addr;
  readonly localPort: number;
  readonly remoteAddr: Addr;
  readonly remotePort: number;
  private pending: { chunk: Buffer; offset: number; copy: boolean; callback: (err?: Error | null) => void } | undefined;
  /** Chunks given with writeOwned, still on their way through the Writable. */
  private readonly owned = new WeakSet<Buffer>();
  private peerEnded = false;
  private endPushed = false;
  private finished = false;
  private gone = false;
  private idleMs = 0;
  private idleTimer: NodeJS.Timeout | undefined;
  /** See releaseOnDestroy; 0 = a destroy before the close completed resets the connection. */
  private releaseMs = 0;
  private released = false;
  private releaseTimer: NodeJS.Timeout | undefined;

  /**
   * `noDelay`: the engine already sends this connection's writes at once (the dial asked for it).
   */
  constructor(
    private readonly ops: ConnOps,
    readonly id: number,
    ends: ConnEnds,
    private noDelay = false,
  ) {
    super({ allowHalfOpen: true });
    this.localAddr = ends.localAddr;
    this.localPort = ends.localPort;
    this.remoteAddr = ends.remoteAddr;
    this.remotePort = ends.remotePort;
  }

  /**
   * Like `net.Socket#setNoDelay`: with `true`, every write goes out at once instead of being held
   * while earlier data is unacknowledged. For writers that batch themselves.
   */
  setNoDelay(noDelay = true): this {
    if (!this.gone && !(noDelay && this.noDelay)) this.ops.setNagle(this.id, !noDelay);
    this.noDelay = noDelay;
    return this;
  }

  /**
   * As write(), without the copy of `data` the connection otherwise makes: the caller hands it over
   * and never changes it. For in-process services writing one buffer to many connections.
   */
  writeOwned(data: Buffer, callback?: (err?: Error | null) => void): boolean {
    this.owned.add(data);
    return this.write(data, callback);
  }

  /**
   * A destroy() after end() (without an error) then closes as a daemon closes for its IPC clients:
   * the data already written is still sent and followed by FIN, what still arrives is discarded,
   * and the connection is reset only if the close has not completed within `lingerMs`. Without
   * it, such a destroy resets the connection at once.
   */
  releaseOnDestroy(lingerMs: number): this {
    this.releaseMs = lingerMs;
    return this;
  }

  /** Resets the connection and destroys the stream, whatever releaseOnDestroy says. */
  resetAndDestroy(): this {
    this.releaseMs = 0;
    return this.destroy();
  }

  setTimeout(ms: number, callback?: () => void): this {
    this.idleMs = ms;
    if (callback) this.once('timeout', callback);
    this.touch();
    return this;
  }

  private touch(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    if (this.idleMs > 0 && !this.gone) {
      this.idleTimer = setTimeout(() => this.emit('timeout'), this.idleMs);
      this.idleTimer.unref();
    }
  }

  override _read(): void {
    this.pull();
  }

  /**
   * Moves buffered engine data into the readable side while the consumer wants more. Once the peer
   * has finished (`drainAll`), everything left is taken at once: the engine forgets a connection
   * when it closes, and what it still holds is bounded by the receive window.
   */
  private pull(drainAll = false): void {
    if (this.endPushed) return;
    for (;;) {
      const data = this.ops.read(this.id, READ_CHUNK);
      if (!data) break;
      this.touch();
      const chunk = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
      if (!this.push(chunk) && !drainAll) return;
    }
    if (this.peerEnded) {
      this.endPushed = true;
      this.push(null);
    }
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    if (this.gone) {
      callback(new PilotError('connection_failed', 'connection is closed'));
      return;
    }
    this.pending = { chunk, offset: 0, copy: !this.owned.delete(chunk), callback };
    this.touch();
    this.flushPending();
  }

  private flushPending(): void {
    const p = this.pending;
    if (!p) return;
    p.offset += this.ops.write(this.id, p.chunk.subarray(p.offset), p.copy);
    if (p.offset >= p.chunk.length) {
      this.pending = undefined;
      p.callback();
    }
  }

  override _final(callback: (err?: Error | null) => void): void {
    this.finished = true;
    if (!this.gone) this.ops.close(this.id);
    callback();
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    // autoDestroy runs once both directions are done; the engine then completes the close on its
    // own (FIN retransmission, TIME_WAIT). Only a destroy before that is an abort.
    if (!this.gone && !(this.finished && this.peerEnded)) {
      if (this.finished && err === null && this.releaseMs > 0) this.release();
      else this.ops.abort(this.id);
    }
    this.gone = true;
    const p = this.pending;
    this.pending = undefined;
    p?.callback(err ?? new PilotError('connection_failed', 'connection destroyed'));
    callback(err);
  }

  private release(): void {
    this.released = true;
    this.discard();
    this.releaseTimer = setTimeout(() => this.ops.abort(this.id), this.releaseMs);
    this.releaseTimer.unref();
  }

  /** Reads and drops what arrives for a released connection (a closed window would hold the peer's FIN). */
  private discard(): void {
    while (this.ops.read(this.id, READ_CHUNK)) {
      // dropped
    }
  }

  // ---- engine events ----

  onReadable(): void {
    if (this.released) this.discard();
    else this.pull();
  }

  onWritable(): void {
    this.flushPending();
  }

  onEnd(): void {
    this.peerEnded = true;
    if (this.released) this.discard();
    else this.pull(true);
  }

  onClosed(reason: CloseReason): void {
    if (this.releaseTimer) clearTimeout(this.releaseTimer);
    this.releaseTimer = undefined;
    if (this.gone) return;
    this.gone = true;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    if (reason === 'closed' || reason === 'aborted') {
      const p = this.pending;
      this.pending = undefined;
      p?.callback(new PilotError('connection_failed', 'connection closed before the data was sent'));
      this.peerEnded = true;
      this.pull(true);
      return;
    }
    this.destroy(closeError(reason));
  }
}

export { closeError };
