import type { Addr, SocketAddr } from '../protocol/address.js';
import type { RawConn, RawConnEvents } from '../pilot-net.js';
import type { ConnOps } from './local-conn.js';

/**
 * A connection of a raw service (NetStack.serveRaw): the engine's calls for one connection id and
 * the service's handlers for its events, with nothing buffered here.
 */
export class RawStackConn implements RawConn {
  readonly remoteAddr: Addr;
  readonly remotePort: number;
  #events: RawConnEvents | undefined;
  #open = true;

  constructor(
    private readonly ops: ConnOps,
    readonly id: number,
    readonly localPort: number,
    remote: SocketAddr,
  ) {
    this.remoteAddr = remote.addr;
    this.remotePort = remote.port;
  }

  /** Hands the connection to its service and lets it take what came with the SYN. */
  attach(accept: (conn: RawConn) => RawConnEvents): void {
    this.#events = accept(this);
    this.#events.readable();
  }

  read(maxBytes: number): Uint8Array | null {
    return this.#open ? this.ops.read(this.id, maxBytes) : null;
  }

  write(data: Uint8Array): number {
    return this.#open ? this.ops.write(this.id, data) : 0;
  }

  end(): void {
    if (this.#open) this.ops.close(this.id);
  }

  abort(): void {
    if (this.#open) this.ops.abort(this.id);
  }

  // ---- engine events ----

  onReadable(): void {
    this.#events?.readable();
  }

  onWritable(): void {
    this.#events?.writable();
  }

  onEnd(): void {
    this.#events?.end();
  }

  onClosed(): void {
    this.#open = false;
    this.#events = undefined;
  }

  /** The stack is closing. */
  resetAndDestroy(): void {
    this.abort();
  }
}
