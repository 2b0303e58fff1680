import type { IpcMessage } from '../protocol/ipc.js';
import type { RawConn, RawConnEvents } from '../pilot-net.js';

/** Largest Recv push: data is forwarded as it is read, not one 4 KiB segment per message. */
const RECV_CHUNK = 60 * 1024;

/** What a connection of an IPC client needs from its session. */
export interface IpcConnHost {
  /** Writes a frame to the client; false once the client's socket has enough buffered. */
  write(msg: IpcMessage): boolean;
  /** The client's socket is full: `unblock()` once it drains. */
  blocked(conn: IpcConn): void;
  /** A dial's connection is established (before anything that arrived with it is read). */
  dialOpened(conn: IpcConn): void;
  /** The connection has closed (`error`: why, where it did not close normally). */
  gone(conn: IpcConn, error: Error | undefined): void;
}

/**
 * One stream connection of an IPC client, run on the engine's connection directly (no stream
 * object in the daemon): what arrives goes to the client as Recv frames as the engine hands it
 * over, the client's Sends go to the engine as its send buffer takes them.
 *
 * Backpressure both ways: while the client's socket is full nothing more is read (the receive
 * window closes on the peer); while the engine's send buffer is full the client's Sends wait here
 * (one frame's worth) and the session stops reading the client (see `write`).
 *
 * Nothing is told to the client before `announce` (its DialOK or Accept): what arrives until then
 * waits in the engine.
 */
export class IpcConn implements RawConnEvents {
  #raw: RawConn | undefined;
  #announced = false;
  #blocked = false;
  #peerEnded = false;
  #closeOkSent = false;
  #closed = false;
  /** The client closed its side: FIN once `#out` is sent. */
  #ending = false;
  #finQueued = false;
  /** Released: what arrives is read and dropped. */
  #discarding = false;
  /** The client's data the engine has not taken yet. */
  #out: Uint8Array[] = [];
  #drainWaiters: (() => void)[] = [];
  #linger: NodeJS.Timeout | undefined;
  #giveUpDial: ((err: Error) => void) | undefined;

  /** `dialSeq`: the client's number of the Dial that made it (none for an accepted one). */
  constructor(
    private readonly host: IpcConnHost,
    readonly dialSeq?: number,
  ) {}

  /** The engine's id (valid from `opened` on). */
  get id(): number {
    return this.#raw?.id ?? -1;
  }

  /** Whether the client may still Send on it. */
  get acceptsSends(): boolean {
    return this.#raw !== undefined && !this.#closed && !this.#ending;
  }

  /** The peer finished and the client was told (CloseOK), or the connection is gone. */
  get finished(): boolean {
    return this.#closeOkSent || this.#closed;
  }

  get isClosed(): boolean {
    return this.#closed;
  }

  get lingering(): boolean {
    return this.#linger !== undefined;
  }

  dialing(giveUp: (err: Error) => void): void {
    this.#giveUpDial = giveUp;
  }

  /** Fails the dial that makes this connection, while its handshake is under way. */
  giveUpDial(err: Error): void {
    this.#giveUpDial?.(err);
  }

  /** Writes the DialOK or Accept, then what has already arrived, in the same write to the client. */
  announce(msg: IpcMessage): void {
    this.host.write(msg);
    this.#announced = true;
    this.#forward(this.#peerEnded);
    if (this.#closed) this.#sayClosed();
  }

  /**
   * Queues the client's data for the engine. False when the engine did not take all of it: the
   * caller stops reading the client until `whenDrained` calls back.
   */
  write(data: Uint8Array): boolean {
    const raw = this.#raw;
    if (!raw || this.#closed) return true;
    if (this.#out.length === 0) {
      const taken = raw.write(data);
      if (taken === data.length) return true;
      this.#out.push(data.subarray(taken));
      return false;
    }
    this.#out.push(data);
    return false;
  }

  /** Calls back once the data waiting here is with the engine, or the connection has closed. */
  whenDrained(callback: () => void): void {
    if (this.#out.length === 0 || this.#closed) callback();
    else this.#drainWaiters.push(callback);
  }

  /** The client closed its side: FIN after what it sent. */
  finish(): void {
    if (this.#ending) return;
    this.#ending = true;
    this.#endWhenSent();
  }

  abort(): void {
    this.#raw?.abort();
  }

  /** Resets the connection unless it has closed within `ms`. */
  linger(ms: number): void {
    this.unlinger();
    this.#linger = setTimeout(() => {
      this.#linger = undefined;
      this.abort();
    }, ms);
    this.#linger.unref();
  }

  unlinger(): void {
    if (this.#linger !== undefined) clearTimeout(this.#linger);
    this.#linger = undefined;
  }

  /**
   * Nobody will read this connection any more (its client went away): what arrives is dropped (a
   * closed window would hold the peer, and our FIN behind it), our side finishes after what the
   * client sent, and the connection is reset if the close has not completed within `lingerMs`.
   */
  release(lingerMs: number): void {
    this.#discarding = true;
    this.#announced = true;
    this.#forward(true);
    if (this.#closed) return;
    this.finish();
    this.linger(lingerMs);
  }

  /** The client's socket drained. */
  unblock(): void {
    this.#blocked = false;
    this.#forward(this.#peerEnded);
  }

  // ---- engine events ----

  opened(conn: RawConn): void {
    if (this.#raw) return;
    this.#raw = conn;
    this.#giveUpDial = undefined;
    if (this.dialSeq !== undefined) this.host.dialOpened(this);
  }

  readable(): void {
    this.#forward(false);
  }

  writable(): void {
    const raw = this.#raw;
    if (!raw) return;
    while (this.#out.length > 0) {
      const head = this.#out[0] as Uint8Array;
      const taken = raw.write(head);
      if (taken < head.length) {
        this.#out[0] = head.subarray(taken);
        return;
      }
      this.#out.shift();
    }
    this.#endWhenSent();
    this.#drained();
  }

  /**
   * The peer finished: all it sent is taken now, whatever the client's socket holds (the engine
   * forgets a connection once it closes; what is left is bounded by the receive window).
   */
  end(): void {
    this.#peerEnded = true;
    this.#forward(true);
  }

  closed(error: Error | undefined): void {
    this.#closed = true;
    this.unlinger();
    this.#out = [];
    this.#drained();
    if (this.#announced) this.#sayClosed();
    this.host.gone(this, error);
  }

  // ----

  /** Moves what has arrived to the client; with `drainAll`, whatever the client's socket holds already. */
  #forward(drainAll: boolean): void {
    const raw = this.#raw;
    if (!raw || !this.#announced) return;
    for (;;) {
      if (this.#blocked && !drainAll && !this.#discarding) return;
      const data = raw.read(RECV_CHUNK);
      if (data === null) break;
      if (this.#discarding) continue;
      if (!this.host.write({ cmd: 'Recv', connId: raw.id, data }) && !this.#blocked) {
        this.#blocked = true;
        this.host.blocked(this);
      }
    }
    if (this.#peerEnded) this.#sayClosed();
  }

  /** CloseOK once: the peer finished (after its last Recv), or the connection is gone. */
  #sayClosed(): void {
    if (this.#closeOkSent || this.#discarding || !this.#raw) return;
    this.#closeOkSent = true;
    this.host.write({ cmd: 'CloseOK', connId: this.#raw.id });
  }

  /** FIN, once, after what the client sent. */
  #endWhenSent(): void {
    if (!this.#ending || this.#finQueued || this.#out.length > 0 || !this.#raw) return;
    this.#finQueued = true;
    this.#raw.end();
  }

  #drained(): void {
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const w of waiters) w();
  }
}
