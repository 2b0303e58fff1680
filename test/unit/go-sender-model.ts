import type { Addr, SocketAddr } from '../../src/protocol/address.js';
import {
  decodePacket,
  detachPayload,
  encodePacket,
  Flag,
  makePacket,
  Proto,
  type Packet,
} from '../../src/protocol/packet.js';
import { decodeSack } from '../../src/protocol/sack.js';
import { TransportEndpoint, type EndpointOptions } from '../../src/transport/endpoint.js';
import type { EndpointEvent } from '../../src/transport/types.js';

// Constants of the reference daemon (pkg/daemon/ports.go, daemon.go).
const MSS = 4096;
const INITIAL_CWND = 10 * MSS;
const MAX_CWND = 1024 * 1024;
const RTO_MIN = 200;
const RTO_MAX = 10_000;
const INITIAL_RTO = 1_000;
const CLOCK_GRANULARITY = 10;
const RETX_TICK = 100;
const MAX_RETX_ATTEMPTS = 8;
const PROBE_INITIAL = 500;
const PROBE_MAX = 30_000;
const SWEEP_INTERVAL = 15_000;
const KEEPALIVE = 30_000;
const IDLE_TIMEOUT = 120_000;
/** Window the model advertises: its own receive queue stays empty. */
const OWN_WINDOW = 512;

interface RetxEntry {
  seq: number;
  data: Buffer;
  sentAt: number;
  attempts: number;
  sacked: boolean;
}

const after = (a: number, b: number): boolean => ((a - b) | 0) > 0;
const afterOrEqual = (a: number, b: number): boolean => ((a - b) | 0) >= 0;

/**
 * The sending side of a reference (Go) daemon's stream, rule for rule: `EffectiveWindow` (a peer
 * window of 0 means no limit), `sendSegment` (waits while bytes in flight are not below the
 * window, probing with bare ACKs from 500 ms doubling to 30 s), `ProcessAck` (only bare ACKs count
 * as duplicates; the 3rd fast-retransmits; a new ACK clears SACK marks), `ProcessSACK`,
 * `retransmitUnacked` (a 100 ms tick, one segment per RTO, RST after 8 transmissions) and the idle
 * sweep (keepalive after 30 s, close after 120 s without a packet from the peer).
 */
export class GoSender {
  state: 'SYN_SENT' | 'ESTABLISHED' | 'CLOSED' = 'CLOSED';
  /** Why the model stopped: it sent RST (too many retransmissions), closed an idle connection, or got RST. */
  ended: 'rst_sent' | 'idle_closed' | 'rst_received' | undefined;
  readonly out: Packet[] = [];
  readonly counters = { segments: 0, retransmits: 0, fastRetransmits: 0, probes: 0 };
  /** Sequence numbers that had to be sent more than once. */
  readonly retransmitted = new Set<number>();
  /** Sends this many segments without looking at the window (a sender misled, e.g. by reordered ACKs). */
  overshoot = 0;

  private sendSeq = 1;
  private recvAck = 0;
  private lastAck = 0;
  private unacked: RetxEntry[] = [];
  private cwnd = INITIAL_CWND;
  private ssthresh = MAX_CWND / 2;
  private peerRecvWin = 0;
  private srtt = 0;
  private rttvar = 0;
  private rto = INITIAL_RTO;
  private lastRetxTime: number | undefined;
  private inRecovery = false;
  private recoveryPoint = 0;
  private dupAcks = 0;
  private offset = 0;
  private probeAt: number | undefined;
  private probeInterval = PROBE_INITIAL;
  private nextTick = Infinity;
  private nextSweep = Infinity;
  private lastActivity = 0;

  constructor(
    private readonly src: Addr,
    private readonly dst: SocketAddr,
    private readonly srcPort: number,
    private readonly data: Buffer,
  ) {}

  get bytesInFlight(): number {
    return this.unacked.reduce((n, e) => n + e.data.length, 0);
  }

  dial(now: number): void {
    this.state = 'SYN_SENT';
    this.emit(Flag.SYN, 0, 0, OWN_WINDOW);
    this.lastActivity = now;
  }

  handlePacket(p: Packet, now: number): void {
    if (this.state === 'CLOSED' || p.protocol !== Proto.Stream) return;
    if (p.flags & Flag.RST) {
      this.end('rst_received');
      return;
    }
    if ((p.flags & (Flag.SYN | Flag.ACK)) === (Flag.SYN | Flag.ACK)) {
      if (this.state !== 'SYN_SENT') return;
      this.recvAck = (p.seq + 1) >>> 0;
      this.state = 'ESTABLISHED';
      this.peerRecvWin = p.window * MSS;
      this.emit(Flag.ACK, this.sendSeq, this.recvAck, OWN_WINDOW);
      this.nextTick = now + RETX_TICK;
      this.nextSweep = now + SWEEP_INTERVAL;
      this.pump(now);
      return;
    }
    if (p.flags & (Flag.SYN | Flag.FIN) || !(p.flags & Flag.ACK)) return;
    this.lastActivity = now;
    this.peerRecvWin = p.window * MSS;
    const advanced = p.ack > 0 ? this.processAck(p.ack, p.payload.length === 0, now) : false;
    const sack = decodeSack(p.payload);
    if (sack) {
      for (const e of this.unacked) {
        const end = e.seq + e.data.length;
        if (sack.some((b) => e.seq >= b.left && end <= b.right)) e.sacked = true;
      }
    } else if (p.payload.length > 0) {
      // Data (our peer's keepalive byte): the reference ACKs it.
      this.emit(Flag.ACK, this.sendSeq, this.recvAck, OWN_WINDOW);
    }
    if (this.probeAt !== undefined) {
      // sendSegment is waiting for the window: only an ACK that advances wakes it (WindowCh),
      // which also restarts its probe interval; a window update alone waits for the next probe.
      if (!advanced) return;
      this.probeInterval = PROBE_INITIAL;
      this.probeAt = undefined;
    }
    this.pump(now);
  }

  nextTimeout(): number | undefined {
    if (this.state !== 'ESTABLISHED') return undefined;
    return Math.min(this.nextTick, this.nextSweep, this.probeAt ?? Infinity);
  }

  handleTimeout(now: number): void {
    if (this.state !== 'ESTABLISHED') return;
    if (now >= this.nextTick) {
      this.nextTick += RETX_TICK;
      this.retransmitUnacked(now);
    }
    if (this.state === 'ESTABLISHED' && now >= this.nextSweep) {
      this.nextSweep += SWEEP_INTERVAL;
      if (now - this.lastActivity > IDLE_TIMEOUT) {
        this.end('idle_closed');
        return;
      }
      if (now - this.lastActivity > KEEPALIVE) this.emit(Flag.ACK, this.sendSeq, this.recvAck, 0);
    }
    if (this.probeAt !== undefined && now >= this.probeAt) {
      this.counters.probes++;
      this.emit(Flag.ACK, this.sendSeq, this.recvAck, OWN_WINDOW);
      this.probeInterval = Math.min(this.probeInterval * 2, PROBE_MAX);
      this.probeAt = undefined;
      this.pump(now);
    }
  }

  private effectiveWindow(): number {
    let win = this.cwnd <= 0 ? INITIAL_CWND : this.cwnd;
    if (this.peerRecvWin > 0 && this.peerRecvWin < win) win = this.peerRecvWin;
    return win;
  }

  private pump(now: number): void {
    while (this.state === 'ESTABLISHED' && this.offset < this.data.length) {
      if (this.overshoot > 0) this.overshoot--;
      else if (this.bytesInFlight >= this.effectiveWindow()) {
        this.probeAt ??= now + this.probeInterval;
        return;
      }
      const chunk = this.data.subarray(this.offset, this.offset + MSS);
      this.offset += chunk.length;
      this.emit(Flag.ACK, this.sendSeq, this.recvAck, OWN_WINDOW, chunk);
      this.unacked.push({ seq: this.sendSeq, data: chunk, sentAt: now, attempts: 1, sacked: false });
      this.sendSeq = (this.sendSeq + chunk.length) >>> 0;
      this.lastActivity = now;
      this.counters.segments++;
    }
  }

  /** Returns true when the ACK advanced. */
  private processAck(ack: number, pure: boolean, now: number): boolean {
    if (after(this.lastAck, ack)) return false;
    if (ack === this.lastAck) {
      if (!pure) return false;
      this.dupAcks++;
      if (this.dupAcks === 3) {
        this.counters.fastRetransmits++;
        const e = this.unacked.find((x) => !x.sacked);
        if (e) this.resend(e, now);
        this.ssthresh = Math.max(Math.floor(this.cwnd / 2), MSS);
        this.cwnd = this.ssthresh + 3 * MSS;
      } else if (this.dupAcks > 3) {
        this.cwnd = Math.min(this.cwnd + MSS, MAX_CWND);
      }
      return false;
    }
    const acked = (ack - this.lastAck) >>> 0;
    this.lastAck = ack;
    this.dupAcks = 0;
    this.lastRetxTime = undefined;
    if (this.inRecovery && afterOrEqual(ack, this.recoveryPoint)) this.inRecovery = false;
    const remaining: RetxEntry[] = [];
    for (const e of this.unacked) {
      if (afterOrEqual(ack, e.seq + e.data.length)) {
        if (e.attempts === 1 && !e.sacked) this.updateRtt(now - e.sentAt);
      } else {
        e.sacked = false;
        remaining.push(e);
      }
    }
    this.unacked = remaining;
    if (this.cwnd < this.ssthresh) this.cwnd += acked;
    else this.cwnd += Math.max(1, Math.floor((MSS * acked) / this.cwnd));
    this.cwnd = Math.min(this.cwnd, MAX_CWND);
    return true;
  }

  private updateRtt(rtt: number): void {
    if (this.srtt === 0) {
      this.srtt = rtt;
      this.rttvar = rtt / 2;
    } else {
      this.rttvar = (this.rttvar * 3) / 4 + Math.abs(this.srtt - rtt) / 4;
      this.srtt = (this.srtt * 7) / 8 + rtt / 8;
    }
    this.rto = Math.min(Math.max(this.srtt + Math.max(CLOCK_GRANULARITY, 4 * this.rttvar), RTO_MIN), RTO_MAX);
  }

  private retransmitUnacked(now: number): void {
    if (this.unacked.length === 0) return;
    if (this.lastRetxTime !== undefined && now - this.lastRetxTime < this.rto) return;
    for (const e of this.unacked) {
      if (e.sacked) continue;
      if (now - e.sentAt > this.rto) {
        if (e.attempts >= MAX_RETX_ATTEMPTS) {
          this.emit(Flag.RST, 0, 0, 0);
          this.end('rst_sent');
          return;
        }
        if (!this.inRecovery) {
          this.ssthresh = Math.max(Math.floor(this.cwnd / 2), MSS);
          this.cwnd = INITIAL_CWND;
          this.inRecovery = true;
          this.recoveryPoint = this.sendSeq;
          this.rto = Math.min(this.rto * 2, RTO_MAX);
        }
        this.lastRetxTime = now;
        this.resend(e, now);
      }
      return;
    }
  }

  private resend(e: RetxEntry, now: number): void {
    e.attempts++;
    e.sentAt = now;
    this.counters.retransmits++;
    this.retransmitted.add(e.seq);
    this.emit(Flag.ACK, e.seq, this.recvAck, OWN_WINDOW, e.data);
  }

  private end(why: NonNullable<GoSender['ended']>): void {
    this.state = 'CLOSED';
    this.ended = why;
    this.probeAt = undefined;
  }

  private emit(flags: number, seq: number, ack: number, window: number, payload?: Uint8Array): void {
    this.out.push(
      makePacket({
        flags,
        protocol: Proto.Stream,
        src: this.src,
        dst: this.dst.addr,
        srcPort: this.srcPort,
        dstPort: this.dst.port,
        seq,
        ack,
        window,
        payload,
      }),
    );
  }
}

export const GO_ADDR = { network: 0, node: 1 };
export const TS_ADDR = { network: 0, node: 2 };

/**
 * A GoSender dialling a pilot-ts endpoint over a lossless wire with a fixed one-way delay. Every
 * packet is encoded and decoded on the way; `wire` keeps what the endpoint sent.
 */
export class GoLink {
  now = 0;
  readonly ep: TransportEndpoint;
  readonly go: GoSender;
  readonly events: EndpointEvent[] = [];
  /** Stream packets the endpoint sent, with the time they left. */
  readonly wire: { at: number; packet: Packet }[] = [];
  /** Data segments that reached the endpoint, with the time they arrived. */
  readonly arrivals: { at: number; seq: number; length: number }[] = [];
  /** Called after each packet the endpoint handles. */
  observe: () => void = () => {};
  private queue: { at: number; to: 'ep' | 'go'; packet: Packet }[] = [];

  constructor(
    readonly delay: number,
    data: Buffer,
    options: Partial<Omit<EndpointOptions, 'localAddr'>> = {},
    readonly port = 7,
  ) {
    this.ep = new TransportEndpoint({ ...options, localAddr: TS_ADDR });
    this.ep.listen(port);
    this.go = new GoSender(GO_ADDR, { addr: TS_ADDR, port }, 49152, data);
  }

  /** Dials and runs until the endpoint accepted; returns its connection id. */
  connect(): number {
    this.go.dial(this.now);
    this.run(1000, () => this.go.state === 'ESTABLISHED');
    const accepted = this.events.find((e) => e.type === 'accepted');
    if (accepted?.type !== 'accepted') throw new Error('not accepted');
    return accepted.connId;
  }

  private drain(): void {
    let p: Packet | undefined;
    while ((p = this.ep.pollTransmit())) {
      const copy = this.roundTrip(p);
      this.wire.push({ at: this.now, packet: copy });
      this.queue.push({ at: this.now + this.delay, to: 'go', packet: copy });
    }
    for (const q of this.go.out.splice(0))
      this.queue.push({ at: this.now + this.delay, to: 'ep', packet: this.roundTrip(q) });
    let e: EndpointEvent | undefined;
    while ((e = this.ep.pollEvent())) this.events.push(e);
  }

  private roundTrip(p: Packet): Packet {
    const decoded = decodePacket(encodePacket(p));
    if (!decoded.ok) throw decoded.error;
    return decoded.value;
  }

  runUntil(until: number, stop: () => boolean = () => false): void {
    this.drain();
    for (let guard = 0; guard < 10_000_000; guard++) {
      if (stop()) return;
      const next = Math.min(
        this.queue[0]?.at ?? Infinity,
        this.ep.nextTimeout() ?? Infinity,
        this.go.nextTimeout() ?? Infinity,
      );
      if (next > until) {
        this.now = until;
        return;
      }
      this.now = Math.max(this.now, next);
      while (this.queue.length > 0 && (this.queue[0] as { at: number }).at <= this.now) {
        const item = this.queue.shift() as { at: number; to: 'ep' | 'go'; packet: Packet };
        if (item.to === 'ep') {
          if (item.packet.payload.length > 0 && !decodeSack(item.packet.payload))
            this.arrivals.push({ at: this.now, seq: item.packet.seq, length: item.packet.payload.length });
          this.ep.handlePacket(detachPayload(item.packet), this.now);
          this.observe();
        } else {
          this.go.handlePacket(detachPayload(item.packet), this.now);
        }
        this.drain();
      }
      const t = this.ep.nextTimeout();
      if (t !== undefined && t <= this.now) this.ep.handleTimeout(this.now);
      const g = this.go.nextTimeout();
      if (g !== undefined && g <= this.now) this.go.handleTimeout(this.now);
      this.drain();
    }
    throw new Error('runUntil: too many steps');
  }

  run(ms: number, stop?: () => boolean): void {
    this.runUntil(this.now + ms, stop);
  }

  /** Reads up to maxBytes from the connection. */
  read(connId: number, maxBytes = Number.MAX_SAFE_INTEGER): Buffer {
    const parts: Buffer[] = [];
    let left = maxBytes;
    let d: Uint8Array | null;
    while (left > 0 && (d = this.ep.read(connId, left, this.now))) {
      parts.push(Buffer.from(d));
      left -= d.length;
    }
    this.drain();
    return Buffer.concat(parts);
  }
}
