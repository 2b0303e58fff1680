import type { Addr, SocketAddr } from '../protocol/address.js';
import type { RawConn, RawConnEvents } from '../pilot-net.js';
import type { CloseReason } from '../transport/types.js';
import { closeError, type ConnOps } from './local-conn.js';

/**
 * A connection run without a stream object (NetStack.serveRaw and dialRaw): the engine's calls for
 * one connection id and its owner's handlers for its events, with nothing buffered here.
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
    /** A dial's handlers, attached once the handshake completes (see connected). */
    private readonly dialEvents?: RawConnEvents,
  ) {
    this.remoteAddr = remote.addr;
    this.remotePort = remote.port;
  }

  /** Hands the connection to its owner and lets it take what came with the handshake. */
  attach(events: RawConnEvents): void {
    this.#events = events;
    events.opened?.(this);
    events.readable();
  }

  /** A dial's handshake completed. */
  connected(): void {
    if (this.dialEvents) this.attach(this.dialEvents);
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

  setNoDelay(noDelay: boolean): void {
    if (this.#open) this.ops.setNagle(this.id, !noDelay);
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

  onClosed(reason: CloseReason): void {
    const events = this.#events;
    this.#open = false;
    this.#events = undefined;
    events?.closed?.(reason === 'closed' || reason === 'aborted' ? undefined : closeError(reason));
  }

  /** The stack is closing. */
  resetAndDestroy(): void {
    this.abort();
  }
}
