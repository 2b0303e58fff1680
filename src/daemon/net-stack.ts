import { performance } from 'node:perf_hooks';
import { PilotError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Addr, SocketAddr } from '../protocol/address.js';
import { detachPayload, Flag, type Packet } from '../protocol/packet.js';
import { Port } from '../protocol/ports.js';
import type { Datagram, DialOptions, PilotNetwork, RawConn, RawConnEvents } from '../pilot-net.js';
import { TransportEndpoint, TransportError, type EndpointOptions, type PortPolicy } from '../transport/endpoint.js';
import { PortInUseError } from '../transport/port-table.js';
import type { CloseReason, EndpointEvent } from '../transport/types.js';
import { coalesceAcks } from '../transport/coalesce-acks.js';
import { dialError } from './dial-error.js';
import { LocalConn, type ConnOps } from './local-conn.js';
import { EngineTimer } from './engine-timer.js';
import { LocalListener } from './local-listener.js';
import { PendingDials } from './pending-dials.js';
import { RawStackConn } from './raw-conn.js';

/** What the stack holds (InfoOK `resources`): all of it returns to its idle level once connections close. */
export type StackResources = {
  /** Ports listeners are bound to. */
  bound_ports: number[];
  /** Dials waiting for their handshake. */
  dials: number;
  /** The engine's one timer (0 when no connection needs one), and the one for all dials' deadlines. */
  timers: { engine: number; dials: number };
};

export interface NetStackOptions {
  localAddr: Addr;
  /** Sends a packet to another node (through the tunnel). Packets to this node loop back inside. */
  transmit: (packet: Packet) => void;
  /** Sends what `transmit` was given and is waiting to be sent together with more (see Tunnel.flushNow). */
  transmitNow?: () => void;
  endpoint?: Omit<EndpointOptions, 'localAddr'>;
  log?: Logger;
  /** Called once when a dial has had no answer for `dialStallMs` (the tunnel may switch to relay). */
  onDialStalled?: (node: number) => void;
  dialStallMs?: number;
}

/** Connection lifecycle notices for webhooks and counters. */
export type ConnNotice =
  | { kind: 'accepted'; connId: number; localPort: number; remote: SocketAddr }
  | { kind: 'closed'; connId: number; localPort: number; remote: SocketAddr; reason: CloseReason };

/** A connection as the stack runs it: with a stream object, or raw (see serveRaw, dialRaw). */
type StackConn = LocalConn | RawStackConn;

const DEFAULT_DIAL_TIMEOUT_MS = 30_000;

/**
 * Port 444 carries one message per connection (PROTOCOL.md §6.1): a sender dials, writes one
 * segment, and closes after 500 ms. Its connections are kept few per node and short-lived, so that
 * one node opening them in a flood holds a handful of slots for a few seconds, not the port.
 */
export const HANDSHAKE_PORT_POLICY: Readonly<PortPolicy> = Object.freeze({
  maxConnsPerSource: 4,
  synRatePerSource: 4,
  maxLifetimeMs: 5_000,
  evictOldestWhenFull: true,
});

/**
 * Drives the sans-I/O transport engine with the real clock and exposes it in-process as a
 * PilotNetwork: the built-in services and the IPC server both work on its LocalConns.
 */
export class NetStack implements PilotNetwork {
  readonly endpoint: TransportEndpoint;
  readonly localAddr: Addr;
  private readonly conns = new Map<number, StackConn>();
  private readonly listeners = new Map<number, LocalListener>();
  /** Ports served by a raw service (serveRaw), with the service's accept. */
  private readonly rawServices = new Map<number, (conn: RawConn) => RawConnEvents>();
  private readonly dials: PendingDials<StackConn>;
  private readonly datagramHandlers = new Set<(d: Datagram) => void>();
  private readonly noticeHandlers = new Set<(n: ConnNotice) => void>();
  private readonly timer = new EngineTimer(
    () => this.endpoint.nextTimeout(),
    now,
    () => this.run(() => this.endpoint.handleTimeout(now())),
  );
  private flushing = false;
  /** A flush is due at the end of this event-loop turn (packets arrived). */
  private turnFlushScheduled = false;
  /** A flush is due once the current call stack unwinds (a connection call made output, a handshake packet came). */
  private tickFlushScheduled = false;
  /** That flush answers a SYN: what it produces is sent at once (see handlePacket). */
  private answerOnTick = false;
  private flushAgain = false;
  private loopback: Packet[] = [];
  private closed = false;
  private readonly ops: ConnOps;

  constructor(private readonly options: NetStackOptions) {
    this.localAddr = options.localAddr;
    this.endpoint = new TransportEndpoint({
      ...options.endpoint,
      portPolicies: { [Port.Handshake]: HANDSHAKE_PORT_POLICY, ...options.endpoint?.portPolicies },
      localAddr: options.localAddr,
    });
    // Connections to this node itself are pilot-ts at both ends.
    this.endpoint.setPeerHonoursZeroWindow(options.localAddr.node, true);
    // Connection calls never dispatch events while they run: a 'readable' or 'writable' delivered
    // into the middle of a LocalConn read or write would reorder or repeat its bytes.
    this.ops = {
      write: (id, data, copy) => this.afterCall(this.endpoint.write(id, data, now(), copy)),
      read: (id, max) => this.afterCall(this.endpoint.read(id, max, now())),
      close: (id) => this.afterCall(this.endpoint.close(id, now())),
      abort: (id) => this.afterCall(this.endpoint.abort(id, now())),
      setNagle: (id, on) => this.afterCall(this.endpoint.setNagle(id, on, now())),
    };
    this.dials = new PendingDials<StackConn>({
      abort: (connId) => this.ops.abort(connId),
      onStall: options.onDialStalled,
      // After three unanswered SYNs (t ≈ 3 s) the reference switches the peer to the beacon relay.
      stallMs: options.dialStallMs ?? 3_500,
    });
  }

  /**
   * Feeds a packet that arrived for this node. Output is flushed once per event-loop turn, so a
   * burst of datagrams read together is answered together (see flush for ACK coalescing).
   *
   * A handshake packet is the exception: its output goes out once the datagram that brought it
   * has been read (on the next tick), so an accepted connection's service (the echo answering a
   * ping) and a dial's caller (its promise) run before the event loop moves on, not in a later
   * phase of it, and a SYN's answer is sent from there too (once per turn; see Tunnel.flushNow).
   * The rest of the datagram (the data that came with a SYN-ACK) is in by then, so a dial learns
   * its connection and its first bytes together. A SYN-ACK's own ACK still waits for the turn's
   * end, where it rides on what the caller writes.
   */
  handlePacket(packet: Packet): void {
    if (this.closed) return;
    this.endpoint.handlePacket(packet, now());
    if ((packet.flags & Flag.SYN) !== 0) {
      if ((packet.flags & Flag.ACK) === 0) this.answerOnTick = true;
      this.flushOnTick();
      return;
    }
    if (this.turnFlushScheduled) return;
    this.turnFlushScheduled = true;
    setImmediate(() => {
      this.turnFlushScheduled = false;
      this.flush();
    });
  }

  /**
   * Output of a connection call leaves once the caller's stack unwinds: inside a flush (a handler
   * writing in answer to 'readable', the echo service for one) that flush sends it too, otherwise a
   * flush runs on the next tick, still before the tunnel seals this turn's packets, so an answer
   * and what the application does at once in reply (an ACK and the FIN after an 'end') travel in
   * one datagram. Passes `value` through.
   */
  private afterCall<T>(value: T): T {
    if (this.flushing) {
      this.flushAgain = true;
      return value;
    }
    this.flushOnTick();
    return value;
  }

  private flushOnTick(): void {
    if (this.tickFlushScheduled || this.closed) return;
    this.tickFlushScheduled = true;
    process.nextTick(() => {
      this.tickFlushScheduled = false;
      this.flush();
      if (this.answerOnTick) {
        this.answerOnTick = false;
        this.options.transmitNow?.();
      }
    });
  }

  onDatagram(handler: (d: Datagram) => void): () => void {
    this.datagramHandlers.add(handler);
    return () => this.datagramHandlers.delete(handler);
  }

  onNotice(handler: (n: ConnNotice) => void): () => void {
    this.noticeHandlers.add(handler);
    return () => this.noticeHandlers.delete(handler);
  }

  async listen(port: number): Promise<LocalListener> {
    return this.listenSync(port);
  }

  listenSync(port: number): LocalListener {
    if (this.closed) throw new PilotError('unavailable', 'daemon is shutting down');
    try {
      this.endpoint.listen(port);
    } catch (err) {
      if (err instanceof PortInUseError) throw new PilotError('already_exists', `port ${port} is already bound`);
      throw new PilotError('invalid_argument', `cannot bind port ${port}: ${(err as Error).message}`);
    }
    const listener = new LocalListener(port, (p) => {
      this.listeners.delete(p);
      this.rawServices.delete(p);
      this.endpoint.unlisten(p);
    });
    this.listeners.set(port, listener);
    return listener;
  }

  /**
   * Binds `port` for a service that works on the engine's connections without a Duplex each (the
   * echo service: a ping's echo is then a few calls on the engine, not a stream's set-up and flow).
   */
  async serveRaw(port: number, accept: (conn: RawConn) => RawConnEvents): Promise<LocalListener> {
    const listener = this.listenSync(port);
    this.rawServices.set(port, accept);
    return listener;
  }

  isBound(port: number): boolean {
    return this.endpoint.ports.isBound(port);
  }

  resources(): StackResources {
    return {
      bound_ports: this.endpoint.ports.boundPorts,
      dials: this.dials.size,
      timers: { engine: this.timer.armed ? 1 : 0, dials: this.dials.timerArmed ? 1 : 0 },
    };
  }

  dial(addr: Addr, port: number, options: DialOptions = {}): Promise<LocalConn> {
    return this.startDial(addr, port, options, (connId, localPort) =>
      this.newConn(connId, localPort, { addr, port }, options.noDelay === true),
    );
  }

  /**
   * A dial whose connection runs without a stream object, as a raw service's do (see serveRaw):
   * `events` hear of it from the handshake on (`opened` first, inside the stack's flush, before the
   * promise resolves), so nothing that arrives with or right after the answer is missed.
   */
  dialRaw(addr: Addr, port: number, options: DialOptions, events: RawConnEvents): Promise<RawConn> {
    return this.startDial(
      addr,
      port,
      options,
      (connId, localPort) => new RawStackConn(this.ops, connId, localPort, { addr, port }, events),
      events,
    );
  }

  private startDial<C extends StackConn>(
    addr: Addr,
    port: number,
    options: DialOptions,
    make: (connId: number, localPort: number) => C,
    events?: RawConnEvents,
  ): Promise<C> {
    if (this.closed) return Promise.reject(new PilotError('unavailable', 'daemon is shutting down'));
    options.signal?.throwIfAborted();
    let connId: number;
    try {
      connId = this.run(() => {
        const id = this.endpoint.dial({ addr, port }, now(), options.data);
        if (options.noDelay) this.endpoint.setNagle(id, false, now());
        return id;
      });
      // The SYN leaves before the rest of this turn (the dial's bookkeeping, the caller's code).
      this.options.transmitNow?.();
    } catch (err) {
      if (err instanceof TransportError)
        return Promise.reject(
          new PilotError(err.code === 'payload_too_large' ? 'too_large' : 'unavailable', err.message),
        );
      throw err;
    }
    const localPort = this.endpoint.localPortOf(connId) ?? 0;
    const dialed = this.dials.wait(
      connId,
      { remote: { addr, port }, timeoutMs: options.timeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS, signal: options.signal },
      () => make(connId, localPort),
    );
    events?.dialing?.((err) => this.dials.fail(connId, err));
    return dialed;
  }

  async sendTo(addr: Addr, port: number, data: Uint8Array): Promise<void> {
    if (data.length === 0) throw new PilotError('invalid_argument', 'datagram is empty');
    try {
      this.run(() => this.endpoint.sendDatagram({ addr, port }, data, now()));
    } catch (err) {
      if (err instanceof TransportError) throw new PilotError('too_large', err.message);
      throw err;
    }
  }

  /** A control ping to a node; it opens the tunnel (key exchange) on the way. */
  ping(node: number, seq = 0): void {
    if (this.closed) return;
    this.run(() => this.endpoint.ping({ network: this.localAddr.network, node }, seq, new Uint8Array(0), now()));
  }

  /**
   * What a node's capability advert tells its connections (see PeerCaps): `mss` > 0, the node is
   * pilot-ts, takes segments of that size and stops at a zero window; 0, it is not (or no longer)
   * known to be: the reference's segment size, and a window never advertised as 0.
   */
  setPeerSegmentSize(node: number, mss: number): void {
    if (this.closed) return;
    this.run(() => {
      this.endpoint.setPeerSegmentSize(node, mss);
      this.endpoint.setPeerHonoursZeroWindow(node, mss > 0);
    });
  }

  /** Whether a node takes a dial's first bytes in the SYN (its capability advert says so). */
  setPeerTakesSynData(node: number, on: boolean): void {
    if (this.closed) return;
    this.endpoint.setPeerTakesSynData(node, on);
  }

  /** Resets any connection of this node by id (`pilotctl disconnect`); false if there is none. */
  disconnect(connId: number): boolean {
    const conn = this.conns.get(connId);
    conn?.resetAndDestroy();
    return conn !== undefined;
  }

  /** Fails every dial still waiting for a node that turned out unreachable. */
  failDialsTo(node: number, err: Error): void {
    this.dials.failTo(node, err);
  }

  /**
   * Refuses a SYN from a node that may not connect to its port (it is not trusted): a RST saying
   * so, within the node's reset budget (counted in `endpoint.refusals`: untrusted, rst_suppressed).
   */
  refuseUntrusted(syn: Packet): void {
    if (this.closed) return;
    this.run(() => this.endpoint.refuseSyn(syn, 'untrusted', now()));
  }

  /** Aborts every connection with a node (its trust was revoked). */
  abortPeer(node: number): void {
    for (const info of this.endpoint.connections()) {
      if (info.remote.addr.node === node) this.ops.abort(info.id);
    }
  }

  close(): void {
    if (this.closed) return;
    for (const conn of this.conns.values()) conn.resetAndDestroy();
    for (const l of this.listeners.values()) void l.close();
    this.closed = true;
    this.timer.stop();
    this.dials.close(new PilotError('unavailable', 'daemon is shutting down'));
  }

  // ---- engine driving ----

  /** Runs an engine call, then moves its output and events out and re-arms the timer. */
  private run<T>(call: () => T): T {
    const result = call();
    this.flush();
    return result;
  }

  private flush(): void {
    if (this.flushing) {
      this.flushAgain = true;
      return;
    }
    this.flushing = true;
    try {
      do {
        this.flushAgain = false;
        const out: Packet[] = [];
        let p: Packet | undefined;
        while ((p = this.endpoint.pollTransmit())) out.push(p);
        for (const q of coalesceAcks(out)) this.route(q);
        let e: EndpointEvent | undefined;
        while ((e = this.endpoint.pollEvent())) this.dispatch(e);
      } while (this.flushAgain);
    } finally {
      this.flushing = false;
    }
    this.timer.armLater();
  }

  private route(p: Packet): void {
    if (p.dst.node === this.localAddr.node && p.dst.network === this.localAddr.network) {
      // To this node: fed back in on the next turn (never inside the flush that produced it), all
      // of a turn's packets together, each with a payload of its own as over a wire.
      this.loopback.push(detachPayload(p));
      if (this.loopback.length === 1) setImmediate(() => this.deliverLoopback());
      return;
    }
    this.options.transmit(p);
  }

  private deliverLoopback(): void {
    const packets = this.loopback;
    this.loopback = [];
    for (const p of packets) this.handlePacket(p);
  }

  private newConn(connId: number, localPort: number, remote: SocketAddr, noDelay = false): LocalConn {
    return new LocalConn(
      this.ops,
      connId,
      { localAddr: this.localAddr, localPort, remoteAddr: remote.addr, remotePort: remote.port },
      noDelay,
    );
  }

  private dispatch(e: EndpointEvent): void {
    switch (e.type) {
      case 'accepted': {
        const listener = this.listeners.get(e.localPort);
        if (!listener) {
          this.ops.abort(e.connId);
          return;
        }
        const raw = this.rawServices.get(e.localPort);
        if (raw) {
          const conn = new RawStackConn(this.ops, e.connId, e.localPort, e.remote);
          this.conns.set(e.connId, conn);
          this.notify({ kind: 'accepted', connId: e.connId, localPort: e.localPort, remote: e.remote });
          conn.attach(raw(conn));
          return;
        }
        const conn = this.newConn(e.connId, e.localPort, e.remote);
        this.conns.set(e.connId, conn);
        this.notify({ kind: 'accepted', connId: e.connId, localPort: e.localPort, remote: e.remote });
        listener.deliver(conn);
        return;
      }
      case 'connected': {
        // Registered before anything awaiting the dial runs (its callbacks are microtasks).
        const conn = this.dials.connected(e.connId);
        if (!conn) return;
        this.conns.set(e.connId, conn);
        if (conn instanceof RawStackConn) conn.connected();
        return;
      }
      case 'readable':
        this.conns.get(e.connId)?.onReadable();
        return;
      case 'writable':
        this.conns.get(e.connId)?.onWritable();
        return;
      case 'end':
        this.conns.get(e.connId)?.onEnd();
        return;
      case 'closed': {
        this.dials.closed(e.connId, (remote) => dialError(e.reason, e.cause, remote));
        const conn = this.conns.get(e.connId);
        this.conns.delete(e.connId);
        if (conn) {
          this.notify({
            kind: 'closed',
            connId: e.connId,
            localPort: conn.localPort,
            remote: { addr: conn.remoteAddr, port: conn.remotePort },
            reason: e.reason,
          });
          conn.onClosed(e.reason);
        }
        return;
      }
      case 'datagram': {
        const d: Datagram = { srcAddr: e.src.addr, srcPort: e.src.port, dstPort: e.dstPort, data: Buffer.from(e.data) };
        for (const h of this.datagramHandlers) h(d);
        return;
      }
      case 'pong':
        return;
    }
  }

  private notify(n: ConnNotice): void {
    for (const h of this.noticeHandlers) {
      try {
        h(n);
      } catch (err) {
        this.options.log?.warn({ err }, 'connection notice handler failed');
      }
    }
  }
}

function now(): number {
  return performance.now();
}
