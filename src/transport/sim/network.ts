import { addrEquals, formatAddr, type Addr } from '../../protocol/address.js';
import { decodePacket, encodePacket, type Packet } from '../../protocol/packet.js';
import type { EndpointEvent } from '../types.js';
import { Link, type DropReason, type InFlight, type LinkConfig } from './link.js';
import { Prng } from './prng.js';
import { Scheduler } from './scheduler.js';

/** What the simulator needs from a node; TransportEndpoint satisfies it structurally. */
export interface SimEndpoint {
  handlePacket(packet: Packet, now: number): void;
  handleTimeout(now: number): void;
  pollTransmit(): Packet | undefined;
  pollEvent(): EndpointEvent | undefined;
  nextTimeout(): number | undefined;
}

export type EventHandler = (event: EndpointEvent) => void;

export class SimNode<E extends SimEndpoint = SimEndpoint> {
  private readonly handlers: EventHandler[] = [];

  constructor(
    readonly name: string,
    readonly addr: Addr,
    readonly endpoint: E,
  ) {}

  /** Registers a handler for this node's endpoint events; returns a function that removes it. */
  on(handler: EventHandler): () => void {
    this.handlers.push(handler);
    return () => {
      const i = this.handlers.indexOf(handler);
      if (i >= 0) this.handlers.splice(i, 1);
    };
  }

  /** @internal */
  dispatch(event: EndpointEvent): void {
    // A copy, so handlers may unsubscribe themselves while being called.
    for (const handler of [...this.handlers]) handler(event);
  }
}

export type TraceEntry =
  | {
      readonly t: number;
      readonly kind: 'send';
      readonly link: string;
      readonly size: number;
      readonly copies: number;
      readonly dropped?: DropReason;
    }
  | {
      readonly t: number;
      readonly kind: 'deliver';
      readonly link: string;
      readonly size: number;
      readonly crc: number;
      readonly duplicate: boolean;
      readonly reordered: boolean;
    }
  | { readonly t: number; readonly kind: 'reject'; readonly link: string; readonly reason: 'partition' | 'checksum' }
  | { readonly t: number; readonly kind: 'unroutable'; readonly node: string }
  | { readonly t: number; readonly kind: 'timeout'; readonly node: string }
  | { readonly t: number; readonly kind: 'event'; readonly node: string; readonly type: EndpointEvent['type'] }
  | { readonly t: number; readonly kind: 'call' };

export function formatTrace(e: TraceEntry): string {
  const { t, kind, ...rest } = e;
  return `${t.toFixed(6)} ${kind} ${JSON.stringify(rest)}`;
}

export interface SimNetworkOptions {
  seed: number;
  startTime?: number;
  /** Upper bound of processed events per run call (default 20 million). */
  maxSteps?: number;
  /** Events processed without the clock moving before the run is declared a livelock (default 200 000). */
  stallSteps?: number;
  trace?: (entry: TraceEntry) => void;
}

export type SimErrorCode = 'livelock' | 'max_steps';

export class SimError extends Error {
  override readonly name = 'SimError';
  constructor(
    readonly code: SimErrorCode,
    message: string,
  ) {
    super(message);
  }
}

type QueueItem =
  | { readonly kind: 'arrive'; readonly link: Link; readonly to: SimNode; readonly copy: InFlight }
  | { readonly kind: 'timer'; readonly node: SimNode; readonly gen: number }
  | { readonly kind: 'call'; readonly fn: () => void };

interface TimerState {
  gen: number;
  scheduledAt: number | undefined;
}

/** A rough bound on drain rounds per step: handlers calling into each other forever is a bug. */
const MAX_DRAIN_ROUNDS = 10_000;

/**
 * A deterministic network: nodes joined by impaired links, driven by a virtual clock.
 * Packets travel as encoded bytes, so corruption is caught (or not) by the real checksum.
 * After every event, and at the start of every run, each endpoint's output is drained:
 * packets go onto links, events go to the handlers, and its next timeout is scheduled.
 */
export class SimNetwork {
  readonly rng: Prng;
  /** Packets whose destination has no node, or no link from the sender. */
  unroutable = 0;
  private readonly sched: Scheduler<QueueItem>;
  private readonly nodeList: SimNode[] = [];
  private readonly byAddr = new Map<string, SimNode>();
  private readonly byName = new Map<string, SimNode>();
  private readonly links = new Map<string, { link: Link; to: SimNode }>();
  private readonly timers = new Map<SimNode, TimerState>();
  private readonly maxSteps: number;
  private readonly stallSteps: number;
  private readonly trace: ((entry: TraceEntry) => void) | undefined;
  private totalSteps = 0;

  constructor(options: SimNetworkOptions) {
    this.rng = new Prng(options.seed);
    this.sched = new Scheduler(options.startTime ?? 0);
    this.maxSteps = options.maxSteps ?? 20_000_000;
    this.stallSteps = options.stallSteps ?? 200_000;
    this.trace = options.trace;
  }

  get now(): number {
    return this.sched.now;
  }

  /** Events processed since the network was created. */
  get steps(): number {
    return this.totalSteps;
  }

  get nodes(): readonly SimNode[] {
    return this.nodeList;
  }

  addNode<E extends SimEndpoint>(name: string, addr: Addr, endpoint: E): SimNode<E> {
    if (this.byName.has(name)) throw new Error(`duplicate node name: ${name}`);
    const key = addrKey(addr);
    if (this.byAddr.has(key)) throw new Error(`duplicate node address: ${formatAddr(addr)}`);
    const node = new SimNode(name, addr, endpoint);
    this.nodeList.push(node);
    this.byAddr.set(key, node);
    this.byName.set(name, node);
    this.timers.set(node, { gen: 0, scheduledAt: undefined });
    return node;
  }

  node(name: string): SimNode {
    const node = this.byName.get(name);
    if (node === undefined) throw new Error(`no node named ${name}`);
    return node;
  }

  /** Joins two nodes with a link each way; `ba` defaults to `ab`. Returns both directions. */
  connect(a: SimNode, b: SimNode, ab: Partial<LinkConfig> = {}, ba: Partial<LinkConfig> = ab): { ab: Link; ba: Link } {
    return { ab: this.addLink(a, b, ab), ba: this.addLink(b, a, ba) };
  }

  /** The link from one node to another. */
  link(from: SimNode, to: SimNode): Link {
    const entry = this.links.get(linkKey(from, to));
    if (entry === undefined) throw new Error(`no link ${from.name}->${to.name}`);
    return entry.link;
  }

  allLinks(): Link[] {
    return [...this.links.values()].map((e) => e.link);
  }

  /** Partitions (or heals) both directions between two nodes. */
  partition(a: SimNode, b: SimNode): void {
    this.link(a, b).partition(this.now);
    this.link(b, a).partition(this.now);
  }

  heal(a: SimNode, b: SimNode): void {
    this.link(a, b).heal(this.now);
    this.link(b, a).heal(this.now);
  }

  /** Runs fn at an absolute virtual time (clamped to now); endpoints are drained afterwards. */
  at(time: number, fn: () => void): void {
    this.sched.schedule(time, { kind: 'call', fn });
  }

  after(delayMs: number, fn: () => void): void {
    this.at(this.now + delayMs, fn);
  }

  /**
   * Processes events until the predicate holds (true) or `maxVirtualMs` of virtual time has
   * passed (false; the clock then stands at the deadline).
   */
  runUntil(predicate: () => boolean, maxVirtualMs: number): boolean {
    const deadline = this.now + maxVirtualMs;
    const stepLimit = this.totalSteps + this.maxSteps;
    let stallTime = this.now;
    let stalled = 0;
    this.flush();
    for (;;) {
      if (predicate()) return true;
      const next = this.sched.peekTime();
      if (next === undefined || next > deadline) {
        this.sched.advanceTo(deadline);
        return predicate();
      }
      if (this.totalSteps >= stepLimit) {
        throw new SimError('max_steps', `simulation exceeded ${this.maxSteps} steps at t=${this.now}ms`);
      }
      this.step();
      if (this.now === stallTime) {
        if (++stalled > this.stallSteps) {
          throw new SimError('livelock', `clock stuck at t=${this.now}ms for ${stalled} steps`);
        }
      } else {
        stallTime = this.now;
        stalled = 0;
      }
    }
  }

  /** Processes every event in the next `ms` of virtual time. */
  runFor(ms: number): void {
    this.runUntil(() => false, ms);
  }

  /** Drains every endpoint now: needed only for calls made outside handlers, between runs. */
  flush(): void {
    for (let round = 0; ; round++) {
      if (round >= MAX_DRAIN_ROUNDS) {
        throw new SimError('livelock', `endpoints kept producing output at t=${this.now}ms`);
      }
      let busy = false;
      for (const node of this.nodeList) if (this.drain(node)) busy = true;
      if (!busy) break;
    }
    for (const node of this.nodeList) this.reschedule(node);
  }

  private addLink(from: SimNode, to: SimNode, config: Partial<LinkConfig>): Link {
    const key = linkKey(from, to);
    if (this.links.has(key)) throw new Error(`duplicate link ${key}`);
    const name = `${from.name}->${to.name}`;
    const link = new Link(name, config, this.rng.fork(name));
    this.links.set(key, { link, to });
    return link;
  }

  private step(): void {
    const item = this.sched.pop();
    if (item === undefined) return;
    this.totalSteps++;
    const now = this.now;
    switch (item.kind) {
      case 'arrive':
        this.arrive(item.link, item.to, item.copy);
        break;
      case 'timer': {
        const timer = this.timers.get(item.node) as TimerState;
        if (item.gen !== timer.gen) return;
        timer.scheduledAt = undefined;
        this.trace?.({ t: now, kind: 'timeout', node: item.node.name });
        item.node.endpoint.handleTimeout(now);
        break;
      }
      case 'call':
        this.trace?.({ t: now, kind: 'call' });
        item.fn();
        break;
    }
    this.flush();
  }

  private arrive(link: Link, to: SimNode, copy: InFlight): void {
    if (!link.arrive(copy)) {
      this.trace?.({ t: this.now, kind: 'reject', link: link.name, reason: 'partition' });
      return;
    }
    const decoded = decodePacket(copy.bytes);
    link.recordDecoded(copy, decoded.ok);
    if (!decoded.ok) {
      if (!copy.corrupted) throw new Error(`link ${link.name} delivered undecodable bytes: ${decoded.error.message}`);
      this.trace?.({ t: this.now, kind: 'reject', link: link.name, reason: 'checksum' });
      return;
    }
    this.trace?.({
      t: this.now,
      kind: 'deliver',
      link: link.name,
      size: copy.bytes.length,
      crc: readCrc(copy.bytes),
      duplicate: copy.duplicate,
      reordered: copy.reordered,
    });
    to.endpoint.handlePacket(decoded.value, this.now);
  }

  private drain(node: SimNode): boolean {
    let busy = false;
    for (let p = node.endpoint.pollTransmit(); p !== undefined; p = node.endpoint.pollTransmit()) {
      busy = true;
      this.route(node, p);
    }
    for (let e = node.endpoint.pollEvent(); e !== undefined; e = node.endpoint.pollEvent()) {
      busy = true;
      this.trace?.({ t: this.now, kind: 'event', node: node.name, type: e.type });
      node.dispatch(e);
    }
    return busy;
  }

  private route(from: SimNode, packet: Packet): void {
    const to = this.byAddr.get(addrKey(packet.dst));
    const entry = to === undefined ? undefined : this.links.get(linkKey(from, to));
    if (entry === undefined || addrEquals(packet.dst, from.addr)) {
      this.unroutable++;
      this.trace?.({ t: this.now, kind: 'unroutable', node: from.name });
      return;
    }
    const bytes = encodePacket(packet);
    const result = entry.link.transmit(bytes, this.now);
    this.trace?.({
      t: this.now,
      kind: 'send',
      link: entry.link.name,
      size: bytes.length,
      copies: result.copies.length,
      ...(result.dropped === undefined ? {} : { dropped: result.dropped }),
    });
    for (const copy of result.copies) {
      this.sched.schedule(copy.arriveAt, { kind: 'arrive', link: entry.link, to: entry.to, copy });
    }
  }

  private reschedule(node: SimNode): void {
    const timer = this.timers.get(node) as TimerState;
    const at = node.endpoint.nextTimeout();
    if (at === timer.scheduledAt) return;
    timer.gen++;
    timer.scheduledAt = at;
    if (at !== undefined) this.sched.schedule(at, { kind: 'timer', node, gen: timer.gen });
  }
}

function addrKey(a: Addr): string {
  return `${a.network}:${a.node}`;
}

function linkKey(from: SimNode, to: SimNode): string {
  return `${addrKey(from.addr)}>${addrKey(to.addr)}`;
}

function readCrc(bytes: Uint8Array): number {
  return (((bytes[30] ?? 0) << 24) | ((bytes[31] ?? 0) << 16) | ((bytes[32] ?? 0) << 8) | (bytes[33] ?? 0)) >>> 0;
}
