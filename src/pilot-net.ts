import type { Duplex } from 'node:stream';
import type { Addr } from './protocol/address.js';

/**
 * The stream interfaces every pilot application is written against: the SDK implements them over
 * IPC, the daemon implements them in-process for its built-in services. A service written for one
 * runs unchanged on the other.
 */

/** A reliable byte stream to a remote port: a `node:stream` Duplex with pilot addressing. */
export interface PilotConn extends Duplex {
  /** Daemon-wide connection id (as `pilotctl connections` shows it). */
  readonly id: number;
  readonly localAddr: Addr;
  readonly localPort: number;
  readonly remoteAddr: Addr;
  readonly remotePort: number;
  /** Like `net.Socket#setTimeout`: emits 'timeout' after `ms` of inactivity (0 disables). */
  setTimeout(ms: number, callback?: () => void): this;
  /** Like `net.Socket#setNoDelay`, where the connection runs in this process (daemon services). */
  setNoDelay?(noDelay?: boolean): this;
  /**
   * Where the connection runs in this process: a destroy() after end() lets the close complete
   * (written data sent, then FIN; what arrives discarded) for up to `lingerMs` before resetting,
   * as a daemon does when its IPC client closes a connection.
   */
  releaseOnDestroy?(lingerMs: number): this;
}

/** Accepts connections on one port; emits 'connection' like `net.Server` and is async-iterable. */
export interface PilotListener extends AsyncIterable<PilotConn> {
  readonly port: number;
  on(event: 'connection', listener: (conn: PilotConn) => void): this;
  on(event: 'close', listener: () => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
  off(event: 'connection', listener: (conn: PilotConn) => void): this;
  /** Stops accepting; connections already accepted stay open. */
  close(): Promise<void>;
}

export interface DialOptions {
  signal?: AbortSignal;
  /** Gives up after this long (default 30 s). */
  timeoutMs?: number;
  /**
   * The stream's first bytes. To a pilot-ts peer that advertised it, their first segment rides in
   * the SYN (like TCP Fast Open, without a cookie: the tunnel already authenticates the sender), so
   * the answer to a short request comes one round trip after the dial; a peer that refuses the
   * connection discards them. To other peers they leave as soon as the connection is established.
   * Through a pilot-ts daemon they travel with the dial request itself.
   */
  data?: Uint8Array;
}

/** An unreliable datagram as delivered to the application. */
export interface Datagram {
  readonly srcAddr: Addr;
  readonly srcPort: number;
  readonly dstPort: number;
  readonly data: Buffer;
}

/** What a service needs from the network it runs on. */
export interface PilotNetwork {
  readonly localAddr: Addr;
  listen(port: number): Promise<PilotListener>;
  dial(addr: Addr, port: number, options?: DialOptions): Promise<PilotConn>;
  sendTo(addr: Addr, port: number, data: Uint8Array): Promise<void>;
}
