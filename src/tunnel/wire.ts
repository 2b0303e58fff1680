import type { Logger } from '../log.js';
import { encodeBeacon } from '../protocol/beacon.js';
import { MAX_UDP_PAYLOAD_IPV4, MAX_UDP_PAYLOAD_IPV6 } from '../protocol/tunnel.js';
import { formatEndpoint, type UdpEndpoint } from './endpoint.js';
import { bump, emptyStats, type DropReason, type TunnelStats } from './stats.js';
import type { DroppedEvent } from './types.js';
import type { UdpSocket } from './udp-socket.js';

/** Outgoing datagrams and the counters: direct, wrapped for the beacon relay, and drops. */
export class Wire {
  readonly stats: TunnelStats = emptyStats();
  #closed = false;

  constructor(
    private readonly socket: UdpSocket,
    readonly beacon: UdpEndpoint | undefined,
    private readonly log: Logger,
    private readonly onDrop: (event: DroppedEvent) => void,
  ) {}

  received(bytes: number): void {
    this.stats.bytesRecv += bytes;
    this.stats.pktsRecv += 1;
  }

  /**
   * Sends one datagram; a list of pieces is sent gathered, as one datagram. One larger than UDP
   * carries to `to` is dropped here and counted as `too_large` (the OS would refuse it later).
   */
  deliver(bytes: Uint8Array | readonly Uint8Array[], to: UdpEndpoint, kind: string): void {
    if (this.#closed) return;
    const size = bytes instanceof Uint8Array ? bytes.length : bytes.reduce((n, b) => n + b.length, 0);
    if (size > (to.family === 6 ? MAX_UDP_PAYLOAD_IPV6 : MAX_UDP_PAYLOAD_IPV4)) return this.drop('too_large', to);
    const sent = this.socket.send(bytes, to, (err) => {
      bump(this.stats.dropped, 'send_error');
      this.log.debug({ err: err.message, to: formatEndpoint(to) }, 'tunnel send failed');
    });
    if (!sent) return this.drop('unreachable', to);
    this.stats.bytesSent += size;
    this.stats.pktsSent += 1;
    bump(this.stats.sent, kind);
  }

  /** Wraps a tunnel frame as beacon Relay (0x05) for `dest`. */
  relay(sender: number, dest: number, frame: Uint8Array, kind: string): void {
    if (!this.beacon) return;
    bump(this.stats.sent, 'relay');
    this.deliver(encodeBeacon({ type: 'Relay', sender, dest, frame }), this.beacon, kind);
  }

  drop(reason: DropReason, endpoint: UdpEndpoint, fromNode?: number): void {
    bump(this.stats.dropped, reason);
    const event: DroppedEvent = { reason, endpoint: formatEndpoint(endpoint) };
    if (fromNode !== undefined) event.fromNode = fromNode;
    this.log.debug(event, 'tunnel drop');
    this.onDrop(event);
  }

  countDropped(reason: DropReason, count: number): void {
    if (count > 0) bump(this.stats.dropped, reason, count);
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.socket.close();
  }
}
