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
  /**
   * Where the connection runs in this process: as write(), without the copy of `data` that is
   * otherwise made; the caller hands `data` over and never changes it.
   */
  writeOwned?(data: Buffer, callback?: (err?: Error | null) => void): boolean;
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
  /**
   * Like `net.connect`'s `noDelay`: every write goes out at once instead of waiting while earlier
   * data is unacknowledged (Nagle). Connections through a daemon always have it.
   */
  noDelay?: boolean;
}

/** An unreliable datagram as delivered to the application. */
export interface Datagram {
  readonly srcAddr: Addr;
  readonly srcPort: number;
  readonly dstPort: number;
  readonly data: Buffer;
}

/**
 * A connection as the engine that runs it sees it, for a service answering inside the node's own
 * process without a stream object per connection (see `PilotNetwork.serveRaw`).
 */
export interface RawConn {
  readonly id: number;
  readonly localPort: number;
  readonly remoteAddr: Addr;
  readonly remotePort: number;
  /** Takes up to `maxBytes` of what has arrived, or null when nothing is waiting. */
  read(maxBytes: number): Uint8Array | null;
  /** Queues (copies) what the send buffer takes of `data` and returns how many bytes that was. */
  write(data: Uint8Array): number;
  /** Sends FIN once what was written is out. */
  end(): void;
  /** Resets the connection. */
  abort(): void;
  /** Like `net.Socket#setNoDelay` (Nagle off with `true`). */
  setNoDelay(noDelay: boolean): void;
}

/** What a raw service hears about one of its connections; each may read and write at once. */
export interface RawConnEvents {
  /**
   * A dial's SYN is out: `giveUp` fails the dial (its promise rejects with `err`) and resets its
   * connection; after the handshake it does nothing. The raw counterpart of a dial's `signal`, for
   * a caller that gives up rarely and dials thousands of times a second (an AbortController and
   * its listener per dial were 4.6 % of a dialling daemon's busy time at about 2,000 dials a
   * second).
   */
  dialing?(giveUp: (err: Error) => void): void;
  /** The connection is established; comes before every other event (a dial's handler learns its connection here). */
  opened?(conn: RawConn): void;
  /** Bytes arrived (also called on accept, for bytes that came with the SYN). */
  readable(): void;
  /** The send buffer has room again. */
  writable(): void;
  /** The peer finished sending; what it sent before can still be read. */
  end(): void;
  /** The connection is gone: `error` says why where it did not close normally. */
  closed?(error: Error | undefined): void;
}

/** What a service needs from the network it runs on. */
export interface PilotNetwork {
  readonly localAddr: Addr;
  listen(port: number): Promise<PilotListener>;
  /**
   * Only where the connections run in this process (a daemon's or an embedded node's own
   * services): binds `port` for a service that works on the engine's connections directly.
   * `accept` is called for each; its events come until the connection closes.
   */
  serveRaw?(port: number, accept: (conn: RawConn) => RawConnEvents): Promise<PilotListener>;
  dial(addr: Addr, port: number, options?: DialOptions): Promise<PilotConn>;
  sendTo(addr: Addr, port: number, data: Uint8Array): Promise<void>;
}
