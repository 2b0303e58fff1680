import { addrEquals, type Addr, type SocketAddr } from '../protocol/address.js';
import { Flag, Proto, makePacket, type Packet } from '../protocol/packet.js';
import { Admission, type RefusalCounters, type SynRefusal, type PortPolicy } from './admission.js';
import { ConnectionTable } from './conn-table.js';
import { Connection } from './connection.js';
import { resolveConnectionOptions } from './options.js';
import { PeerTraits } from './peer-traits.js';
import { PeerFlights } from './peer-flight.js';
import { PortTable } from './port-table.js';
import { encodeResetCause, type ResetCause } from './reset-cause.js';
import { seqAdd } from './seq.js';
import type { ConnectionInfo, ConnectionOptions, ConnectionSink, EndpointEvent, Millis } from './types.js';

const MAX_PEER_ENTRIES = 4096;
const REAP_INTERVAL_MS = 5_000;
const EMPTY = new Uint8Array(0);
/** Ephemeral ports a dial looks at before a connection in TIME_WAIT gives its port up (see dial). */
const PORT_SEARCH_BEFORE_REUSE = 64;
/**
 * Default limit on bytes in flight to one peer node over all its connections (see PeerFlight):
 * below the 8 MiB a Linux peer's UDP socket holds with the 4 MiB receive buffer the tunnel asks
 * for, and above a single connection's receive window (2 MiB), so one connection never feels it.
 */
const PEER_FLIGHT_BYTES = 4 * 1024 * 1024;

export type { PortPolicy, RefusalCounters, SynRefusal } from './admission.js';

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
  /**
   * Bytes in flight to one peer node over all its connections (default 4 MiB; 0 = no limit):
   * what the peer's UDP socket can buffer while its process is busy (see PeerFlight).
   */
  peerFlightBytes?: number;
  /** The local ports dials take, first and last (default PROTOCOL.md's 49152–65535). */
  ephemeralPorts?: readonly [number, number];
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

/**
 * Sans-I/O transport for one node: every stream connection, listener, datagram and ping.
 * Feed it packets addressed to this node and the current time; take packets to send
 * with pollTransmit(), events with pollEvent(), and call handleTimeout() at nextTimeout().
 */
export class TransportEndpoint {
  readonly localAddr: Addr;
  readonly ports: PortTable;
  /** Inbound SYNs refused by reason, evictions and withheld RSTs (for counters and webhooks). */
  readonly refusals: RefusalCounters;

  private readonly connOptions: ConnectionOptions;
  private readonly admission: Admission;
  private lastReap: Millis | undefined;
  private readonly conns = new ConnectionTable();
  private readonly peers = new PeerTraits(MAX_PEER_ENTRIES);
  private readonly flights: PeerFlights;
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
    this.ports = new PortTable(...(options.ephemeralPorts ?? []));
    this.connOptions = resolveConnectionOptions(options.connection);
    const flightLimit = options.peerFlightBytes ?? PEER_FLIGHT_BYTES;
    this.flights = new PeerFlights(
      flightLimit,
      Math.min(flightLimit, Math.max(this.connOptions.mss, flightLimit / 16)),
    );
    const resetRate = options.resetRatePerSource ?? 10;
    this.admission = new Admission(
      {
        maxConnsPerPort: options.maxConnsPerPort ?? 1024,
        maxConnsTotal: options.maxConnsTotal ?? 4096,
        synRatePerSecond: options.synRatePerSecond ?? 100,
        synRatePerSource: options.synRatePerSource ?? 100,
        peerShare: options.peerShare ?? 0.25,
        resetRatePerSource: resetRate,
        resetBurstPerSource: options.resetBurstPerSource ?? 2 * resetRate,
      },
      this.conns,
      (conn, now) => this.evict(conn, now),
    );
    this.refusals = this.admission.refusals;
    for (const [port, policy] of Object.entries(options.portPolicies ?? {})) this.setPortPolicy(Number(port), policy);
  }

  /** Sets (or with undefined clears) the rules for connections to a local port. */
  setPortPolicy(port: number, policy: PortPolicy | undefined): void {
    this.admission.setPortPolicy(port, policy);
  }

  // ---- listeners ----

  listen(port: number): void {
    this.ports.bind(port);
  }

  unlisten(port: number): void {
    this.ports.unbind(port);
  }

  // ---- streams ----

  /**
   * Opens a stream. `data`, the stream's first bytes, rides in the SYN when the peer takes that
   * (setPeerTakesSynData) and it fits one segment, so a request is answered one round trip after
   * the dial; otherwise it is sent as soon as the connection is established.
   */
  dial(remote: SocketAddr, now: Millis, data?: Uint8Array): number {
    if (!this.admission.admitDial(now)) throw new TransportError('too_many_connections', 'connection limit reached');
    if (data !== undefined && data.length > this.connOptions.sendBufferBytes)
      throw new TransportError('payload_too_large', `${data.length} bytes exceed the send buffer`);
    // Ports come free in the order they were handed out (TIME_WAIT ends oldest first), so when the
    // next ones are all taken the range is as good as full: the oldest connection in TIME_WAIT gives
    // its port up (as a kernel reuses one) before the whole range is searched, which at a sustained
    // rate above range / TIME_WAIT (1,600 dials a second) would cost every dial 16,384 lookups.
    const inUse = (p: number): boolean => this.conns.portInUse(p);
    const port =
      this.ports.allocate(inUse, PORT_SEARCH_BEFORE_REUSE) ??
      this.conns.reclaimLingeringPort(now, this.connOptions.timeWaitMs, (p) => this.ports.isEphemeral(p)) ??
      this.ports.allocate(inUse);
    if (port === undefined) throw new TransportError('no_ports', 'no free ephemeral port');
    const conn = this.create(port, remote);
    conn.dial(now, data, this.peers.of(remote.addr.node).synData === true);
    return conn.id;
  }

  /**
   * Queues data; returns how many bytes were accepted (0 when the send buffer is full or the
   * connection is gone). The accepted bytes are copied, as a socket write copies them; with `copy`
   * false the caller hands `data` over instead and must never change it.
   */
  write(connId: number, data: Uint8Array, now: Millis, copy = true): number {
    const conn = this.conns.get(connId);
    if (!conn) return 0;
    const n = conn.write(data, now, copy);
    this.conns.settle(conn);
    return n;
  }

  /** In-order data (at most `maxBytes`), or null when nothing is buffered. */
  read(connId: number, maxBytes: number, now: Millis): Uint8Array | null {
    const conn = this.conns.get(connId);
    const data = conn?.read(maxBytes, now) ?? null;
    this.conns.settle(conn);
    return data;
  }

  /** Nagle on or off for one connection (default on). */
  setNagle(connId: number, on: boolean, now: Millis): void {
    const conn = this.conns.get(connId);
    conn?.setNagle(on, now);
    this.conns.settle(conn);
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
    this.flights.wake(now);
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
        this.flights.wake(now);
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
      else existing.endTimeWait();
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
    if (!this.admission.allowReset(to.src.node, now)) return;
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
    const port = syn.dstPort;
    if (!this.ports.isBound(port)) return this.refuse(syn, 'no_listener', now);
    const refusal = this.admission.admit(syn.src.node, port, now);
    if (refusal === 'rate_limited') return;
    if (refusal !== undefined) return this.refuse(syn, refusal, now);
    const conn = this.create(port, remote, true);
    const lifetime = this.admission.lifetime(port);
    if (lifetime !== undefined) conn.expireAt(now + lifetime);
    // Accepted before the SYN's own data (if any) is reported readable.
    this.events.push({ type: 'accepted', connId: conn.id, localPort: port, remote });
    conn.acceptSyn(syn, now);
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
    this.flights.wake(now);
    if (this.lastReap === undefined || now - this.lastReap >= REAP_INTERVAL_MS) {
      this.lastReap = now;
      this.admission.reap(now);
      this.flights.reap();
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
    this.peers.update(node, { mss: mss === 0 ? undefined : mss });
    const size = mss === 0 ? this.connOptions.mss : mss;
    for (const conn of this.conns.all()) if (conn.remote.addr.node === node) conn.setSegmentSize(size);
  }

  /**
   * Marks `node` as a peer that stops sending at a zero window (it proved to be pilot-ts), for its
   * current and future connections; `false` forgets it (back to the default, under which a window
   * is never advertised as 0, since the reference reads 0 as "no limit").
   */
  setPeerHonoursZeroWindow(node: number, on: boolean): void {
    this.peers.update(node, { zeroWindow: on });
    const honours = this.peerHonoursZeroWindow(node);
    for (const conn of this.conns.all()) {
      if (conn.remote.addr.node !== node) continue;
      conn.setPeerHonoursZeroWindow(honours);
      this.conns.settle(conn);
    }
  }

  /** Marks `node` as a peer that takes data in a SYN (it advertised so), or with `false` forgets it. */
  setPeerTakesSynData(node: number, on: boolean): void {
    this.peers.update(node, { synData: on });
  }

  /** Whether connections with `node` may advertise a zero window. */
  peerHonoursZeroWindow(node: number): boolean {
    return this.connOptions.peerHonoursZeroWindow || this.peers.of(node).zeroWindow === true;
  }

  // ---- internals ----

  private create(localPort: number, remote: SocketAddr, inbound = false): Connection {
    const budget = this.flights.of(remote.addr.node);
    const conn: Connection = new Connection({
      id: this.nextConnId++,
      localAddr: this.localAddr,
      localPort,
      remote,
      options: this.connOptions,
      sink: this.sink,
      flight: budget && {
        budget,
        resume: (now) => {
          conn.sendMore(now);
          this.conns.settle(conn);
        },
      },
    });
    const peer = this.peers.of(remote.addr.node);
    if (peer.mss !== undefined) conn.setSegmentSize(peer.mss);
    if (peer.zeroWindow) conn.setPeerHonoursZeroWindow(true);
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
