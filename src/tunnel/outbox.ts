import type { Logger } from '../log.js';
import { encodeBeacon } from '../protocol/beacon.js';
import type { NatProbeReply } from '../protocol/nat-probe.js';
import type { PilaFrame } from '../protocol/tunnel.js';
import { MAX_UDP_PAYLOAD_IPV4, MAX_UDP_PAYLOAD_IPV6 } from '../protocol/tunnel.js';
import { formatEndpoint, type UdpEndpoint } from './endpoint.js';
import { bump, emptyStats, type DropReason, type SentKind, type TunnelStats } from './stats.js';
import type { DroppedEvent, TunnelEvents } from './types.js';

/** One datagram for the driver to send; a list of pieces goes out gathered, as one datagram. */
export interface Transmit {
  readonly to: UdpEndpoint;
  readonly bytes: Uint8Array | readonly Uint8Array[];
  readonly size: number;
  readonly kind: SentKind;
}

/** An event of the tunnel, as the driver emits it: its name and arguments. */
export type TunnelEvent = {
  [K in keyof TunnelEvents]: { readonly type: K; readonly args: TunnelEvents[K] };
}[keyof TunnelEvents];

/** A reply to one of our NAT probes (see BeaconSession.natProbe). */
export interface NatProbeReplyEvent {
  readonly type: 'nat-probe-reply';
  readonly token: number;
  readonly reply: NatProbeReply;
  readonly from: UdpEndpoint;
}

export type CoreEvent = TunnelEvent | NatProbeReplyEvent;

/**
 * Work the core cannot do without waiting: checking a key-exchange frame against the key the
 * registry holds for its sender. The driver answers with `TunnelCore.verified(id, verdict, now)`.
 */
export interface VerifyRequest {
  readonly id: number;
  readonly frame: PilaFrame;
}

/** A FIFO that hands its items out one at a time without shifting the array on every take. */
class Fifo<T> {
  #items: T[] = [];
  #head = 0;

  push(item: T): void {
    this.#items.push(item);
  }

  shift(): T | undefined {
    if (this.#head >= this.#items.length) return undefined;
    const item = this.#items[this.#head] as T;
    this.#head += 1;
    if (this.#head === this.#items.length) {
      this.#items = [];
      this.#head = 0;
    }
    return item;
  }

  clear(): void {
    this.#items = [];
    this.#head = 0;
  }
}

/** What the core produced and the driver has not taken yet, and the tunnel's counters. */
export class Outbox {
  readonly stats: TunnelStats = emptyStats();
  readonly #transmits = new Fifo<Transmit>();
  readonly #events = new Fifo<CoreEvent>();
  readonly #requests = new Fifo<VerifyRequest>();
  closed = false;

  constructor(
    readonly beacon: UdpEndpoint | undefined,
    private readonly log: Logger,
  ) {}

  received(bytes: number): void {
    this.stats.bytesRecv += bytes;
    this.stats.pktsRecv += 1;
  }

  /** Queues one datagram; one larger than UDP carries to `to` is dropped here as `too_large`. */
  deliver(bytes: Uint8Array | readonly Uint8Array[], to: UdpEndpoint, kind: SentKind): void {
    if (this.closed) return;
    const size = bytes instanceof Uint8Array ? bytes.length : bytes.reduce((n, b) => n + b.length, 0);
    if (size > (to.family === 6 ? MAX_UDP_PAYLOAD_IPV6 : MAX_UDP_PAYLOAD_IPV4)) return this.drop('too_large', to);
    this.#transmits.push({ to, bytes, size, kind });
  }

  /** Wraps a tunnel frame as beacon Relay (0x05) for `dest`. */
  relay(sender: number, dest: number, frame: Uint8Array, kind: SentKind): void {
    if (!this.beacon || this.closed) return;
    bump(this.stats.sent, 'relay');
    this.deliver(encodeBeacon({ type: 'Relay', sender, dest, frame }), this.beacon, kind);
  }

  drop(reason: DropReason, endpoint: UdpEndpoint, fromNode?: number): void {
    bump(this.stats.dropped, reason);
    const event: DroppedEvent = { reason, endpoint: formatEndpoint(endpoint) };
    if (fromNode !== undefined) event.fromNode = fromNode;
    this.log.debug(event, 'tunnel drop');
    this.emit({ type: 'dropped', args: [event] });
  }

  countDropped(reason: DropReason, count: number): void {
    if (count > 0) bump(this.stats.dropped, reason, count);
  }

  /** The driver handed a transmit to the network. */
  sent(t: Transmit): void {
    this.stats.bytesSent += t.size;
    this.stats.pktsSent += 1;
    bump(this.stats.sent, t.kind);
  }

  /** The driver could not send a transmit: no route from this socket, or the OS refused it later. */
  sendFailed(t: Transmit, reason: 'unreachable' | 'send_error'): void {
    if (reason === 'unreachable') this.drop('unreachable', t.to);
    else bump(this.stats.dropped, 'send_error');
  }

  emit(event: CoreEvent): void {
    if (!this.closed) this.#events.push(event);
  }

  request(request: VerifyRequest): void {
    if (!this.closed) this.#requests.push(request);
  }

  pollTransmit(): Transmit | undefined {
    return this.#transmits.shift();
  }

  pollEvent(): CoreEvent | undefined {
    return this.#events.shift();
  }

  pollRequest(): VerifyRequest | undefined {
    return this.#requests.shift();
  }

  close(): void {
    this.closed = true;
    this.#transmits.clear();
    this.#events.clear();
    this.#requests.clear();
  }
}
