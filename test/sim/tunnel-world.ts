import { BeaconCore, DEFAULT_LIMITS } from '../../src/beacon/core.js';
import { formatEndpoint, type UdpEndpoint } from '../../src/tunnel/endpoint.js';
import { Prng } from '../../src/transport/sim/prng.js';
import { Scheduler } from '../../src/transport/sim/scheduler.js';
import type { SimTunnelNode } from './tunnel-node.js';

/**
 * A deterministic UDP internet for tunnel cores: hosts with public addresses or behind NATs, a
 * beacon (the real BeaconCore), one-way delays with jitter and loss drawn from a seeded PRNG,
 * blocked address pairs, and NATs that can rebind. Nothing touches a socket or the real clock.
 */

export type NatFiltering = 'endpoint-independent' | 'port-restricted';

const key = (ep: UdpEndpoint): string => formatEndpoint(ep);
const v4 = (host: string, port: number): UdpEndpoint => ({ host, port, family: 4 });

/** A NAT with endpoint-independent mapping; its filtering is configurable. */
export class SimNat {
  readonly #byInternal = new Map<string, { pub: UdpEndpoint; internal: UdpEndpoint; allowed: Set<string> }>();
  readonly #byPort = new Map<number, string>();
  #nextPort = 40_000;
  /** Mappings made so far (a rebinding makes a new one). */
  mappings = 0;

  constructor(
    readonly publicIp: string,
    readonly filtering: NatFiltering,
  ) {}

  outbound(internal: UdpEndpoint, to: UdpEndpoint): UdpEndpoint {
    let m = this.#byInternal.get(key(internal));
    if (!m) {
      m = { pub: v4(this.publicIp, this.#nextPort++), internal, allowed: new Set() };
      this.mappings += 1;
      this.#byInternal.set(key(internal), m);
      this.#byPort.set(m.pub.port, key(internal));
    }
    m.allowed.add(key(to));
    return m.pub;
  }

  inbound(to: UdpEndpoint, from: UdpEndpoint): UdpEndpoint | undefined {
    const internal = this.#byPort.get(to.port);
    const m = internal === undefined ? undefined : this.#byInternal.get(internal);
    if (!m) return undefined;
    if (this.filtering === 'port-restricted' && !m.allowed.has(key(from))) return undefined;
    return m.internal;
  }

  /** The public endpoint of a host's socket, if it has a mapping. */
  publicOf(internal: UdpEndpoint): UdpEndpoint | undefined {
    return this.#byInternal.get(key(internal))?.pub;
  }

  /** The NAT forgets the mapping (a reboot, a timeout, a new lease): the next datagram gets a new port. */
  rebind(internal: UdpEndpoint): void {
    const m = this.#byInternal.get(key(internal));
    if (!m) return;
    this.#byInternal.delete(key(internal));
    this.#byPort.delete(m.pub.port);
  }
}

export interface WorldOptions {
  seed: number;
  /** One-way delay between any two public addresses, plus uniform jitter in [0, jitterMs). */
  latencyMs?: number;
  jitterMs?: number;
  loss?: number;
  startTime?: number;
}

type WorldEvent =
  | { readonly kind: 'deliver'; readonly to: UdpEndpoint; readonly from: UdpEndpoint; readonly bytes: Uint8Array }
  | { readonly kind: 'run'; readonly fn: () => void };

export interface WorldStats {
  sent: number;
  lost: number;
  blocked: number;
  /** Refused by a NAT: no mapping, or filtered. */
  natDropped: number;
}

export class SimWorld {
  readonly prng: Prng;
  readonly beaconEndpoint = v4('198.51.100.1', 9001);
  readonly beacon: BeaconCore;
  /** Ed25519 keys by node id, as the registry holds them. */
  readonly keys = new Map<number, Uint8Array>();
  readonly stats: WorldStats = { sent: 0, lost: 0, blocked: 0, natDropped: 0 };
  readonly #scheduler: Scheduler<WorldEvent>;
  readonly #nats = new Map<string, SimNat>();
  readonly #sockets = new Map<string, SimTunnelNode>();
  readonly #blocked = new Set<string>();
  readonly #latency: number;
  readonly #jitter: number;
  readonly #loss: number;
  readonly #rng: Prng;

  constructor(options: WorldOptions) {
    this.prng = new Prng(options.seed);
    this.#rng = this.prng.fork('links');
    this.#scheduler = new Scheduler(options.startTime ?? 1_000_000);
    this.#latency = options.latencyMs ?? 20;
    this.#jitter = options.jitterMs ?? 5;
    this.#loss = options.loss ?? 0;
    this.beacon = new BeaconCore({
      beaconId: 1,
      maxNodes: 1000,
      ttlMs: 5 * 60_000,
      maxNodesPerIp: 64,
      peerStaleMs: 60_000,
      limits: DEFAULT_LIMITS,
      directory: {
        facts: (nodeId) => {
          const publicKey = this.keys.get(nodeId);
          return publicKey ? { publicKey, isPublic: true } : undefined;
        },
      },
    });
  }

  get now(): number {
    return this.#scheduler.now;
  }

  nat(publicIp: string, filtering: NatFiltering): SimNat {
    const nat = new SimNat(publicIp, filtering);
    this.#nats.set(publicIp, nat);
    return nat;
  }

  /** Binds a node's socket at `local` (its private address behind `nat`, or a public one). */
  bind(local: UdpEndpoint, node: SimTunnelNode): void {
    this.#sockets.set(key(local), node);
  }

  unbind(local: UdpEndpoint): void {
    this.#sockets.delete(key(local));
  }

  /** Drops every datagram between two public addresses (both ways) until unblocked. */
  block(a: string, b: string, on: boolean): void {
    for (const k of [`${a}|${b}`, `${b}|${a}`]) {
      if (on) this.#blocked.add(k);
      else this.#blocked.delete(k);
    }
  }

  at(time: number, fn: () => void): void {
    this.#scheduler.schedule(time, { kind: 'run', fn });
  }

  /** A datagram from a socket at `local` (behind `nat` if given). */
  send(local: UdpEndpoint, nat: SimNat | undefined, to: UdpEndpoint, bytes: Uint8Array): void {
    const from = nat ? nat.outbound(local, to) : local;
    this.#transmit(from, to, bytes);
  }

  #transmit(from: UdpEndpoint, to: UdpEndpoint, bytes: Uint8Array): void {
    this.stats.sent += 1;
    if (this.#blocked.has(`${from.host}|${to.host}`)) {
      this.stats.blocked += 1;
      return;
    }
    if (this.#rng.chance(this.#loss)) {
      this.stats.lost += 1;
      return;
    }
    const delay = this.#latency + this.#rng.range(0, this.#jitter);
    this.#scheduler.schedule(this.now + delay, { kind: 'deliver', to, from, bytes: new Uint8Array(bytes) });
  }

  #deliver(to: UdpEndpoint, from: UdpEndpoint, bytes: Uint8Array): void {
    if (to.host === this.beaconEndpoint.host && to.port === this.beaconEndpoint.port) {
      for (const out of this.beacon.handle(bytes, { ip: from.host, port: from.port }, this.now))
        this.#transmit(this.beaconEndpoint, v4(out.to.ip, out.to.port), out.bytes);
      return;
    }
    const nat = this.#nats.get(to.host);
    const local = nat ? nat.inbound(to, from) : to;
    const node = local && this.#sockets.get(key(local));
    if (!node) {
      this.stats.natDropped += 1;
      return;
    }
    node.receive(bytes, from);
  }

  /** Runs every event up to `until` (inclusive), advancing the virtual clock. */
  runUntil(until: number): void {
    for (;;) {
      const next = this.#scheduler.peekTime();
      if (next === undefined || next > until) break;
      const event = this.#scheduler.pop() as WorldEvent;
      if (event.kind === 'run') event.fn();
      else this.#deliver(event.to, event.from, event.bytes);
    }
    this.#scheduler.advanceTo(until);
  }
}
