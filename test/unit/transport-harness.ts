import { detachPayload, encodePacket, decodePacket, type Packet } from '../../src/protocol/packet.js';
import { TransportEndpoint, type EndpointOptions } from '../../src/transport/endpoint.js';
import type { EndpointEvent } from '../../src/transport/types.js';

export const A_ADDR = { network: 0, node: 1 };
export const B_ADDR = { network: 0, node: 2 };

interface InFlight {
  at: number;
  to: 'a' | 'b';
  packet: Packet;
}

/**
 * Two endpoints joined by a lossless wire with a fixed one-way delay. Tests can look at every
 * packet (and drop or rewrite it) through the filter.
 */
export class Pair {
  a: TransportEndpoint;
  b: TransportEndpoint;
  now = 0;
  readonly events: { a: EndpointEvent[]; b: EndpointEvent[] } = { a: [], b: [] };
  /** Every packet put on the wire, in order, after the filter. */
  readonly wire: { from: 'a' | 'b'; packet: Packet; at: number }[] = [];
  filter: (from: 'a' | 'b', p: Packet) => Packet | null = (_f, p) => p;
  private queue: InFlight[] = [];

  constructor(
    readonly delay = 5,
    private readonly options: Partial<Omit<EndpointOptions, 'localAddr'>> = {},
  ) {
    this.a = new TransportEndpoint({ ...options, localAddr: A_ADDR });
    this.b = new TransportEndpoint({ ...options, localAddr: B_ADDR });
  }

  /** Replaces one side with a fresh endpoint at the same address, as a restarted daemon would be. */
  restart(side: 'a' | 'b', overrides: Partial<Omit<EndpointOptions, 'localAddr'>> = {}): void {
    const fresh = new TransportEndpoint({ ...this.options, ...overrides, localAddr: side === 'a' ? A_ADDR : B_ADDR });
    if (side === 'a') this.a = fresh;
    else this.b = fresh;
  }

  endpoint(side: 'a' | 'b'): TransportEndpoint {
    return side === 'a' ? this.a : this.b;
  }

  /** Moves packets from both endpoints onto the wire and collects events. */
  drain(): void {
    for (const side of ['a', 'b'] as const) {
      const ep = this.endpoint(side);
      let p: Packet | undefined;
      while ((p = ep.pollTransmit())) {
        const decoded = decodePacket(encodePacket(p));
        if (!decoded.ok) throw decoded.error;
        const kept = this.filter(side, decoded.value);
        if (!kept) continue;
        this.wire.push({ from: side, packet: kept, at: this.now });
        this.queue.push({ at: this.now + this.delay, to: side === 'a' ? 'b' : 'a', packet: kept });
      }
      let e: EndpointEvent | undefined;
      while ((e = ep.pollEvent())) this.events[side].push(e);
    }
  }

  /** Advances virtual time to `until`, delivering packets and firing timers in order. */
  runUntil(until: number, stop: () => boolean = () => false): void {
    this.drain();
    for (let guard = 0; guard < 1_000_000; guard++) {
      if (stop()) return;
      this.queue.sort((x, y) => x.at - y.at);
      const next = Math.min(
        this.queue[0]?.at ?? Infinity,
        this.a.nextTimeout() ?? Infinity,
        this.b.nextTimeout() ?? Infinity,
      );
      if (next > until) {
        this.now = until;
        return;
      }
      this.now = Math.max(this.now, next);
      while (this.queue.length > 0 && (this.queue[0] as InFlight).at <= this.now) {
        const item = this.queue.shift() as InFlight;
        this.endpoint(item.to).handlePacket(detachPayload(item.packet), this.now);
        this.drain();
      }
      for (const side of ['a', 'b'] as const) {
        const ep = this.endpoint(side);
        const t = ep.nextTimeout();
        if (t !== undefined && t <= this.now) ep.handleTimeout(this.now);
      }
      this.drain();
    }
    throw new Error('runUntil: too many steps');
  }

  run(ms: number, stop?: () => boolean): void {
    this.runUntil(this.now + ms, stop);
  }

  readAll(side: 'a' | 'b', connId: number): Buffer {
    const parts: Buffer[] = [];
    let d: Uint8Array | null;
    while ((d = this.endpoint(side).read(connId, Number.MAX_SAFE_INTEGER, this.now))) parts.push(Buffer.from(d));
    return Buffer.concat(parts);
  }

  eventsOf<T extends EndpointEvent['type']>(side: 'a' | 'b', type: T): Extract<EndpointEvent, { type: T }>[] {
    return this.events[side].filter((e): e is Extract<EndpointEvent, { type: T }> => e.type === type);
  }

  /** Dials a→b on port and runs until b accepted; returns both connection ids. */
  connect(port = 1000): { ca: number; cb: number } {
    if (!this.b.ports.isBound(port)) this.b.listen(port);
    const ca = this.a.dial({ addr: B_ADDR, port }, this.now);
    this.run(1000, () => this.eventsOf('a', 'connected').some((e) => e.connId === ca));
    const accepted = this.eventsOf('b', 'accepted').at(-1);
    if (!accepted) throw new Error('not accepted');
    return { ca, cb: accepted.connId };
  }
}
