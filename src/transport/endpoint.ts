import { addrEquals, type Addr, type SocketAddr } from '../protocol/address.js';
import { Flag, Proto, makePacket, type Packet } from '../protocol/packet.js';
import { ConnectionTable } from './conn-table.js';
import { Connection } from './connection.js';
import { MAX_MSS, resolveConnectionOptions } from './options.js';
import { PortTable } from './port-table.js';
import { KeyedRateLimiter, TokenBucket } from '../rate-limit.js';
import { encodeResetCause, type ResetCause } from './reset-cause.js';
import { seqAdd } from './seq.js';
import type { ConnectionInfo, ConnectionOptions, ConnectionSink, EndpointEvent, Millis } from './types.js';

const MAX_PEER_MSS_ENTRIES = 4096;
/** Source nodes tracked by each per-source limiter (SYNs, resets); beyond it new sources are refused. */
const MAX_TRACKED_SOURCES = 4096;
const REAP_INTERVAL_MS = 5_000;
const EMPTY = new Uint8Array(0);

/** Rules for the connections of one local port, on top of the endpoint's own limits. */
export interface PortPolicy {
  /** Live connections one node may hold on the port; a SYN beyond it closes that node's oldest one there. */
  maxConnsPerSource?: number;
  /** New connections per second one node may open on the port (burst: twice that). */
  synRatePerSource?: number;
  /** Connections on the port are aborted (RST) this long after they were accepted, whatever their state. */
  maxLifetimeMs?: Millis;
  /**
   * When the port is full and no node holds more than its share, close the port's oldest
   * connection instead of refusing the SYN (for ports whose connections are all short-lived).
   */
  evictOldestWhenFull?: boolean;
}

export interface EndpointOptions {
  /** This node's virtual address: the source of every packet it emits. */
  localAddr: Addr;
  connection?: Partial<ConnectionOptions>;
  /** Live connections per local port (default 1024). */
  maxConnsPerPort?: number;
  /** Live connections in all (default 4096). */
  maxConnsTotal?: number;
  /** New inbound connections per second across all peers (default 100, burst 100). */
  synRatePerSecond?: number;
  /**
   * New inbound connections per second from one peer node (default 100, burst 100). The reference's
   * 10/s stalls a client that opens streams in a loop (pings, HTTP without keep-alive) for a second.
   */
  synRatePerSource?: number;
  /**
   * The share of a port's slots, and of the whole table's, that one peer node keeps when another
   * node wants in (default 1/4). A node may hold more while nobody else needs them; when a port (or
   * the table) is full, a SYN from a node below its share closes the oldest connection of the node
   * holding the most, if that node is above its share; otherwise the SYN is refused.
   */
  peerShare?: number;
  /** RSTs per second sent to one node in answer to refused SYNs and stray segments (default 10, burst 20). */
  resetRatePerSource?: number;
  resetBurstPerSource?: number;
  /** Rules per local port (see PortPolicy). */
  portPolicies?: Readonly<Record<number, PortPolicy>>;
}

export type TransportErrorCode = 'no_ports' | 'too_many_connections' | 'payload_too_large';

export class TransportError extends Error {
  override readonly name = 'TransportError';
  constructor(
    readonly code: TransportErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Why an inbound SYN was refused: no connection was made. */
export type SynRefusal = 'rate_limited' | 'no_listener' | 'port_full' | 'total_full' | 'untrusted';

/**
 * The endpoint's refusal counters: SYNs refused by reason, connections closed to make room for
 * another node's (`evicted`), and RSTs not sent because the node they were for had used up its
 * reset budget (`rst_suppressed`).
 */
export type RefusalCounters = Record<SynRefusal | 'evicted' | 'rst_suppressed', number>;

/**
 * Sans-I/O transport for one node: every stream connection, listener, datagram and ping.
 * Feed it packets addressed to this node and the current time; take packets to send
 * with pollTransmit(), events with pollEvent(), and call handleTimeout() at nextTimeout().
 */
export class TransportEndpoint {
  readonly localAddr: Addr;
  readonly ports = new PortTable();
  /** Inbound SYNs refused by reason, evictions and withheld RSTs (for counters and webhooks). */
  readonly refusals: RefusalCounters = {
    rate_limited: 0,
    no_listener: 0,
    port_full: 0,
    total_full: 0,
    untrusted: 0,
    evicted: 0,
    rst_suppressed: 0,
  };

  private readonly connOptions: ConnectionOptions;
  private readonly maxConnsPerPort: number;
  private readonly maxConnsTotal: number;
  private readonly peerShare: number;
  private readonly synGlobal: TokenBucket;
  /** SYNs of nodes that open connections rarely get in from here once the global bucket is empty. */
  private readonly synReserve: TokenBucket;
  private readonly synPerSource: KeyedRateLimiter<number>;
  private readonly resetBudget: KeyedRateLimiter<number>;
  private readonly policies = new Map<number, { policy: PortPolicy; syn: KeyedRateLimiter<number> | undefined }>();
  private lastReap: Millis | undefined;
  private readonly conns = new ConnectionTable();
  private readonly peerMss = new Map<number, number>();
  /** Nodes known to stop at a zero window (beyond the default of connOptions). */
  private readonly zeroWindowPeers = new Set<number>();
  private nextConnId = 1;
  private outbox: Packet[] = [];
  private outHead = 0;
  private events: EndpointEvent[] = [];
  private eventHead = 0;
  private readonly sink: ConnectionSink = {
    transmit: (p) => this.outbox.push(p),
    event: (e) => this.events.push(e),
  };

  constructor(options: EndpointOptions) {
    this.localAddr = options.localAddr;
    this.connOptions = resolveConnectionOptions(options.connection);
    this.maxConnsPerPort = options.maxConnsPerPort ?? 1024;
    this.maxConnsTotal = options.maxConnsTotal ?? 4096;
    const globalRate = options.synRatePerSecond ?? 100;
    const perSource = options.synRatePerSource ?? 100;
    this.synGlobal = new TokenBucket(globalRate, globalRate);
    this.synReserve = new TokenBucket(Math.max(1, globalRate / 2), Math.max(1, globalRate / 2));
    this.synPerSource = new KeyedRateLimiter(perSource, perSource, MAX_TRACKED_SOURCES);
    this.peerShare = options.peerShare ?? 0.25;
    if (!(this.peerShare > 0 && this.peerShare <= 1)) throw new RangeError(`peerShare out of range: ${this.peerShare}`);
    const resetRate = options.resetRatePerSource ?? 10;
    this.resetBudget = new KeyedRateLimiter(
      resetRate,
      options.resetBurstPerSource ?? 2 * resetRate,
      MAX_TRACKED_SOURCES,
    );
    for (const [port, policy] of Object.entries(options.portPolicies ?? {})) this.setPortPolicy(Number(port), policy);
  }

  /** Sets (or with undefined clears) the rules for connections to a local port. */
  setPortPolicy(port: number, policy: PortPolicy | undefined): void {
    if (!policy) {
      this.policies.delete(port);
      return;
    }
    const rate = policy.synRatePerSource;
    this.policies.set(port, {
      policy: { ...policy },
      syn: rate === undefined ? undefined : new KeyedRateLimiter(rate, 2 * rate, MAX_TRACKED_SOURCES),
    });
  }

  // ---- listeners ----

  listen(port: number): void {
    this.ports.bind(port);
  }

  unlisten(port: number): void {
    this.ports.unbind(port);
  }

  // ---- streams ----

  dial(remote: SocketAddr, now: Millis): number {
    if (this.conns.activeCount >= this.maxConnsTotal) {
      // The table is ours first: a node holding more than its share of it gives a slot back.
      const victim = this.victimInTable(undefined);
      if (!victim) throw new TransportError('too_many_connections', 'connection limit reached');
      this.evict(victim, now);
    }
    const port = this.ports.allocate((p) => this.conns.portInUse(p));
    if (port === undefined) throw new TransportError('no_ports', 'no free ephemeral port');
    const conn = this.create(port, remote);
    conn.dial(now);
    return conn.id;
  }

  /**
   * Queues data; returns how many bytes were accepted (0 when the send buffer is full or the
   * connection is gone). The accepted bytes are kept by reference until acknowledged: do not
   * modify `data` afterwards (the same rule as for a socket write).
   */
  write(connId: number, data: Uint8Array, now: Millis): number {
    const conn = this.conns.get(connId);
    return conn ? conn.write(data, now) : 0;
  }

  /** In-order data, or null when nothing is buffered. */
  read(connId: number, maxBytes = Number.MAX_SAFE_INTEGER): Uint8Array | null {
    const conn = this.conns.get(connId);
    const data = conn?.read(maxBytes) ?? null;
    this.conns.settle(conn);
    return data;
  }

  /** Nagle on or off for one connection (default on). */
  setNagle(connId: number, on: boolean, now: Millis): void {
    this.conns.get(connId)?.setNagle(on, now);
  }

  /** Graceful close: the FIN follows the last byte once it is acknowledged. */
  close(connId: number, now: Millis): void {
    const conn = this.conns.get(connId);
    conn?.close(now);
    this.conns.settle(conn);
  }

  abort(connId: number, now: Millis): void {
    const conn = this.conns.get(connId);
    conn?.abort(now);
    this.conns.settle(conn);
  }

  // ---- datagrams and pings ----

  sendDatagram(dst: SocketAddr, data: Uint8Array, _now: Millis, srcPort?: number): void {
    if (data.length > 0xffff)
      throw new TransportError('payload_too_large', `datagram of ${data.length} bytes exceeds 65535`);
    const port = srcPort ?? this.ports.allocate(() => false) ?? 0;
    this.outbox.push(this.packet(Proto.Datagram, 0, port, dst, 0, 0, data));
  }

  ping(dst: Addr, seq: number, data: Uint8Array, _now: Millis, srcPort = 0): void {
    this.outbox.push(this.packet(Proto.Control, 0, srcPort, { addr: dst, port: 0 }, seq, 0, data));
  }

  // ---- input ----

  handlePacket(p: Packet, now: Millis): void {
    if (!addrEquals(p.dst, this.localAddr)) return;
    switch (p.protocol) {
      case Proto.Stream:
        this.handleStream(p, now);
        break;
      case Proto.Datagram:
        if (p.payload.length > 0) {
          this.events.push({
            type: 'datagram',
            src: { addr: p.src, port: p.srcPort },
            dstPort: p.dstPort,
            data: p.payload,
          });
        }
        break;
      case Proto.Control:
        this.handleControl(p);
        break;
      default:
        break;
    }
  }

  private handleStream(p: Packet, now: Millis): void {
    const existing = this.conns.lookup(p.dstPort, p.src, p.srcPort);
    const synOnly = (p.flags & (Flag.SYN | Flag.ACK | Flag.RST)) === Flag.SYN;
    if (existing && !existing.gone) {
      if (!synOnly || existing.isDuplicateSyn(p)) {
        existing.handlePacket(p, now);
        this.conns.settle(existing);
        return;
      }
      // A new SYN on an old 4-tuple: the peer restarted or the old connection lingers in TIME_WAIT.
      if (!existing.finished) existing.abort(now);
      else existing.gone = true;
      this.conns.settle(existing);
    }
    if (synOnly) {
      this.acceptSyn(p, now);
      return;
    }
    // Data, a handshake answer or a FIN for a connection we do not have (our previous life, a dial
    // we abandoned, a connection we reset): tell the sender so that its side does not stay open.
    if (!(p.flags & Flag.RST) && (p.payload.length > 0 || p.flags & (Flag.SYN | Flag.FIN))) {
      const length = p.payload.length + (p.flags & Flag.SYN ? 1 : 0) + (p.flags & Flag.FIN ? 1 : 0);
      this.sendReset(p, Flag.RST, p.ack, seqAdd(p.seq, length), undefined, now);
    }
  }

  /**
   * Refuses a SYN the caller will not let in (`untrusted`: the node is not trusted for that port):
   * counted, and answered with a RST saying why while the node's reset budget lasts.
   */
  refuseSyn(syn: Packet, reason: 'untrusted', now: Millis): void {
    this.refuse(syn, reason, now);
  }

  private refuse(syn: Packet, reason: Exclude<SynRefusal, 'rate_limited'>, now: Millis): void {
    this.refusals[reason]++;
    this.sendReset(syn, Flag.RST | Flag.ACK, 0, seqAdd(syn.seq, 1), REFUSAL_CAUSE[reason], now);
  }

  /**
   * A RST in answer to `to` (a packet we will not take), unless its sender has used up its reset
   * budget: one node must not turn us into a stream of RSTs (the reference answers every one).
   */
  private sendReset(
    to: Packet,
    flags: number,
    seq: number,
    ack: number,
    cause: ResetCause | undefined,
    now: Millis,
  ): void {
    if (!this.resetBudget.take(to.src.node, now)) {
      this.refusals.rst_suppressed++;
      return;
    }
    this.outbox.push(
      this.packet(
        Proto.Stream,
        flags,
        to.dstPort,
        { addr: to.src, port: to.srcPort },
        seq,
        ack,
        cause ? encodeResetCause(cause) : EMPTY,
      ),
    );
  }

  private acceptSyn(syn: Packet, now: Millis): void {
    const remote = { addr: syn.src, port: syn.srcPort };
    const node = syn.src.node;
    const port = syn.dstPort;
    if (!this.ports.isBound(port)) return this.refuse(syn, 'no_listener', now);
    const rules = this.policies.get(port);
    if (!this.admitSyn(node, rules?.syn, now)) {
      this.refusals.rate_limited++;
      return;
    }
    const cap = rules?.policy.maxConnsPerSource;
    if (cap !== undefined) {
      // A node at its cap on this port makes room with its own oldest connection there.
      for (let mine = this.conns.inboundFrom(node, port); mine.size >= Math.max(1, cap); )
        this.evict(firstOf(mine) as Connection, now);
    }
    if (this.conns.activeOnPort(port) >= this.maxConnsPerPort) {
      const victim = this.victimOnPort(port, node, rules?.policy.evictOldestWhenFull === true);
      if (!victim) return this.refuse(syn, 'port_full', now);
      this.evict(victim, now);
    }
    if (this.conns.activeCount >= this.maxConnsTotal) {
      const victim = this.victimInTable(node);
      if (!victim) return this.refuse(syn, 'total_full', now);
      this.evict(victim, now);
    }
    const conn = this.create(port, remote, true);
    const lifetime = rules?.policy.maxLifetimeMs;
    if (lifetime !== undefined) conn.expireAt(now + lifetime);
    conn.acceptSyn(syn, now);
    this.events.push({ type: 'accepted', connId: conn.id, localPort: port, remote });
  }

  /**
   * Per-node buckets first, so that SYNs a node is refused cost nobody else anything; then the
   * global bucket. Once that is empty, a node that has used less than half of its own burst still
   * gets in, from a reserve the heavy nodes cannot touch: one flooding node cannot lock others out.
   */
  private admitSyn(node: number, portLimiter: KeyedRateLimiter<number> | undefined, now: Millis): boolean {
    const light = this.synPerSource.level(node, now) >= 0.5;
    if (!this.synPerSource.take(node, now)) return false;
    if (portLimiter && !portLimiter.take(node, now)) return false;
    return this.synGlobal.take(now) || (light && this.synReserve.take(now));
  }

  private share(slots: number): number {
    return Math.max(1, Math.floor(slots * this.peerShare));
  }

  /** Which connection gives way on a full port to a SYN from `node`; undefined: the SYN is refused. */
  private victimOnPort(port: number, node: number, oldestWhenFull: boolean): Connection | undefined {
    const share = this.share(this.maxConnsPerPort);
    const top = this.conns.heaviest(port);
    if (top && top.node !== node && top.count > share && this.conns.inboundFrom(node, port).size < share) {
      return firstOf(this.conns.inboundFrom(top.node, port));
    }
    return oldestWhenFull ? this.conns.oldestInbound(port) : undefined;
  }

  /** Which connection gives way in a full table to a SYN from `node` (undefined: a local dial). */
  private victimInTable(node: number | undefined): Connection | undefined {
    const share = this.share(this.maxConnsTotal);
    const top = this.conns.heaviest();
    if (!top || top.node === node || top.count <= share) return undefined;
    if (node !== undefined && this.conns.inboundFrom(node).size >= share) return undefined;
    return firstOf(this.conns.inboundFrom(top.node));
  }

  private evict(conn: Connection, now: Millis): void {
    conn.abort(now, 'evicted', encodeResetCause('evicted'));
    this.conns.settle(conn);
    this.refusals.evicted++;
  }

  private handleControl(p: Packet): void {
    if (p.flags & Flag.ACK) {
      this.events.push({ type: 'pong', from: { addr: p.src, port: p.srcPort }, seq: p.seq, data: p.payload });
      return;
    }
    if (p.dstPort !== 0) return;
    this.outbox.push(
      this.packet(Proto.Control, Flag.ACK, 0, { addr: p.src, port: p.srcPort }, p.seq, seqAdd(p.seq, 1), p.payload),
    );
  }

  // ---- time ----

  handleTimeout(now: Millis): void {
    this.conns.expire(now);
    if (this.lastReap === undefined || now - this.lastReap >= REAP_INTERVAL_MS) {
      this.lastReap = now;
      this.synPerSource.reap(now);
      this.resetBudget.reap(now);
      for (const { syn } of this.policies.values()) syn?.reap(now);
    }
  }

  nextTimeout(): Millis | undefined {
    return this.conns.nextTimeout();
  }

  // ---- output ----

  pollTransmit(): Packet | undefined {
    if (this.outHead >= this.outbox.length) {
      if (this.outbox.length > 0) {
        this.outbox = [];
        this.outHead = 0;
      }
      return undefined;
    }
    return this.outbox[this.outHead++];
  }

  pollEvent(): EndpointEvent | undefined {
    if (this.eventHead >= this.events.length) {
      if (this.events.length > 0) {
        this.events = [];
        this.eventHead = 0;
      }
      return undefined;
    }
    return this.events[this.eventHead++];
  }

  // ---- inspection ----

  connection(connId: number): ConnectionInfo | undefined {
    return this.conns.get(connId)?.info();
  }

  /** The local port of a connection (without building its statistics). */
  localPortOf(connId: number): number | undefined {
    return this.conns.get(connId)?.localPort;
  }

  connections(): ConnectionInfo[] {
    return [...this.conns.all()].map((c) => c.info());
  }

  /** Bytes of in-order data waiting to be read on a connection. */
  readableBytes(connId: number): number {
    return this.conns.get(connId)?.readableBytes ?? 0;
  }

  /**
   * Sets the segment size for every current and future connection with `node` (the node
   * advertised that it takes larger segments and the path can carry them). `mss` 0 forgets it.
   */
  setPeerSegmentSize(node: number, mss: number): void {
    if (mss === 0) {
      this.peerMss.delete(node);
      mss = this.connOptions.mss;
    } else {
      if (!Number.isInteger(mss) || mss < 16 || mss > MAX_MSS) throw new RangeError(`mss out of range: ${mss}`);
      if (!this.peerMss.has(node) && this.peerMss.size >= MAX_PEER_MSS_ENTRIES)
        this.peerMss.delete(this.peerMss.keys().next().value as number);
      this.peerMss.set(node, mss);
    }
    for (const conn of this.conns.all()) if (conn.remote.addr.node === node) conn.setSegmentSize(mss);
  }

  /**
   * Marks `node` as a peer that stops sending at a zero window (it proved to be pilot-ts), for its
   * current and future connections; `false` forgets it (back to the default, under which a window
   * is never advertised as 0, since the reference reads 0 as "no limit").
   */
  setPeerHonoursZeroWindow(node: number, on: boolean): void {
    if (on) {
      if (!this.zeroWindowPeers.has(node) && this.zeroWindowPeers.size >= MAX_PEER_MSS_ENTRIES) {
        this.zeroWindowPeers.delete(this.zeroWindowPeers.values().next().value as number);
      }
      this.zeroWindowPeers.add(node);
    } else {
      this.zeroWindowPeers.delete(node);
    }
    const honours = this.peerHonoursZeroWindow(node);
    for (const conn of this.conns.all()) if (conn.remote.addr.node === node) conn.setPeerHonoursZeroWindow(honours);
  }

  /** Whether connections with `node` may advertise a zero window. */
  peerHonoursZeroWindow(node: number): boolean {
    return this.connOptions.peerHonoursZeroWindow || this.zeroWindowPeers.has(node);
  }

  // ---- internals ----

  private create(localPort: number, remote: SocketAddr, inbound = false): Connection {
    const conn = new Connection({
      id: this.nextConnId++,
      localAddr: this.localAddr,
      localPort,
      remote,
      options: this.connOptions,
      sink: this.sink,
    });
    const mss = this.peerMss.get(remote.addr.node);
    if (mss !== undefined) conn.setSegmentSize(mss);
    if (this.zeroWindowPeers.has(remote.addr.node)) conn.setPeerHonoursZeroWindow(true);
    this.conns.add(conn, inbound);
    return conn;
  }

  private packet(
    protocol: number,
    flags: number,
    srcPort: number,
    dst: SocketAddr,
    seq: number,
    ack: number,
    payload: Uint8Array,
  ): Packet {
    return makePacket({
      flags,
      protocol,
      src: this.localAddr,
      dst: dst.addr,
      srcPort,
      dstPort: dst.port,
      seq,
      ack,
      window: 0,
      payload,
    });
  }
}

const REFUSAL_CAUSE: Readonly<Record<Exclude<SynRefusal, 'rate_limited'>, ResetCause>> = {
  no_listener: 'no_listener',
  port_full: 'port_full',
  total_full: 'table_full',
  untrusted: 'untrusted',
};

function firstOf(set: ReadonlySet<Connection>): Connection | undefined {
  for (const c of set) return c;
  return undefined;
}
