import type { Addr, SocketAddr } from '../protocol/address.js';
import { Flag, Proto, makePacket, type Packet } from '../protocol/packet.js';
import { decodeSack } from '../protocol/sack.js';
import { AckPolicy, LEGACY_SLACK_BYTES } from './ack-policy.js';
import { Closing } from './closing.js';
import { Opening } from './opening.js';
import { connectionStats, type ReceiveCounters } from './connection-stats.js';
import { receiveBufferBytes, StreamReceiver } from './receiver.js';
import { StreamSender } from './sender.js';
import { Timer, TimerTable } from './timers.js';
import { decodeResetCause, type ResetCause } from './reset-cause.js';
import { seqAdd, seqGe, seqLe, seqLt } from './seq.js';
import type {
  CloseReason,
  ConnState,
  ConnectionInfo,
  ConnectionOptions,
  ConnectionParams,
  ConnectionSink,
  Millis,
} from './types.js';

const EMPTY = new Uint8Array(0);
const KEEPALIVE_BYTE = Uint8Array.of(0);

/**
 * One stream connection (PROTOCOL.md §7) as a sans-I/O state machine. Differences from the
 * reference, all invisible to a conforming Go peer: FIN is sent only after every byte is
 * acknowledged and is retransmitted until answered; a FIN|ACK is never answered; a FIN is a
 * half-close between pilot-ts peers; keepalives elicit an ACK so idle-but-alive peers survive.
 */
export class Connection {
  readonly id: number;
  readonly localPort: number;
  readonly remote: SocketAddr;

  private readonly opts: ConnectionOptions;
  private readonly sink: ConnectionSink;
  private readonly localAddr: Addr;
  private readonly sender: StreamSender;
  private receiver: StreamReceiver | undefined;
  private current: ConnState = 'CLOSED';
  private done = false;
  private readonly timers = new TimerTable();

  private readonly opening = new Opening();
  private readonly closing = new Closing();

  private persistInterval = 500;
  private lastSendAt: Millis = 0;
  private wantWritable = false;

  private readonly recvCounters: ReceiveCounters = { segmentsRecv: 0, bytesRecv: 0, sackBlocksSent: 0 };
  private readonly acks: AckPolicy;

  constructor(p: ConnectionParams) {
    this.id = p.id;
    this.localAddr = p.localAddr;
    this.localPort = p.localPort;
    this.remote = p.remote;
    // A private copy: the segment size can change per connection (setSegmentSize).
    this.opts = { ...p.options };
    this.sink = p.sink;
    this.sender = new StreamSender(this.opts.isn, this.opts, this.timers, p.flight);
    this.acks = new AckPolicy(this.opts, this.recvCounters);
  }

  get state(): ConnState {
    return this.current;
  }

  /** True once the connection has finished (TIME_WAIT over, or closed at once); the endpoint drops it then. */
  get gone(): boolean {
    return this.done;
  }

  /** Ends TIME_WAIT at once: a new SYN from the peer reuses the 4-tuple. */
  endTimeWait(): void {
    if (this.current === 'TIME_WAIT') this.done = true;
  }

  // ---- opening ----

  /**
   * Sends the SYN. `data` is queued as the stream's first bytes; with `withSyn` its first segment
   * rides in the SYN (the peer said it takes that), and is sent again with every repeated SYN.
   */
  dial(now: Millis, data?: Uint8Array, withSyn = false): void {
    this.current = 'SYN_SENT';
    if (data !== undefined && data.length > 0) {
      this.sender.queue(data);
      if (withSyn) this.opening.synData = this.sender.nextSegment(now, true)?.data ?? EMPTY;
      // Its retransmission waits for the handshake: the SYN timer covers both until then.
      this.timers.clear(Timer.Rto);
    }
    this.sendSyn(now);
  }

  /**
   * Responder side: the SYN was checked by the endpoint; answer and become ESTABLISHED (as the
   * reference). A payload in the SYN is the stream's first bytes (a pilot-ts dialer sends one only
   * to peers that advertised taking it); the SYN-ACK acknowledges it.
   */
  acceptSyn(syn: Packet, now: Millis): void {
    this.opening.peerSynSeq = syn.seq;
    const receiver = this.newReceiver(seqAdd(syn.seq, 1));
    this.receiver = receiver;
    this.sender.onAck({ ack: this.sender.sndUna, window: syn.window, sack: null, payloadLength: 0 }, now);
    this.current = 'ESTABLISHED';
    this.heardFrom(now);
    if (syn.payload.length > 0 && receiver.onData(seqAdd(syn.seq, 1), syn.payload) === 'in_order') {
      this.recvCounters.segmentsRecv++;
      this.recvCounters.bytesRecv += syn.payload.length;
      this.sink.event({ type: 'readable', connId: this.id });
    }
    this.sendSynAck(now);
  }

  private newReceiver(rcvNxt: number): StreamReceiver {
    const r = new StreamReceiver(rcvNxt, receiveBufferBytes(this.opts.mss, this.opts.recvBufferBytes));
    r.slackBytes = this.opts.peerHonoursZeroWindow ? 0 : LEGACY_SLACK_BYTES;
    return r;
  }

  private sendSyn(now: Millis): void {
    this.timers.set(Timer.Syn, this.opening.synSent(now, this.opts.initialRtoMs));
    if (this.opening.synXmits > 1 && this.opening.synData.length > 0) this.sender.resendFirst(now);
    this.emit(Flag.SYN, this.opts.isn, 0, this.opening.synData, now);
  }

  private sendSynAck(now: Millis): void {
    this.opening.synAckSent(now);
    this.emit(Flag.SYN | Flag.ACK, this.opts.isn, this.ackField(), EMPTY, now);
  }

  // ---- application interface ----

  /** See StreamSender.queue for `copy`. */
  write(data: Uint8Array, now: Millis, copy = true): number {
    if (this.closing.requested || this.done || this.current === 'TIME_WAIT') return 0;
    const n = this.sender.queue(data, copy);
    if (n < data.length) this.wantWritable = true;
    if (this.current === 'ESTABLISHED' || this.current === 'CLOSE_WAIT') this.pump(now);
    return n;
  }

  read(maxBytes: number, now: Millis): Buffer | null {
    const r = this.receiver;
    if (!r) return null;
    const wasHolding = r.holding;
    const data = r.read(maxBytes);
    if (data && !this.done && this.current !== 'TIME_WAIT') {
      const release = wasHolding && !r.holding;
      if (this.acks.windowUpdateDue(this.acks.window(r), release)) this.sendWindowUpdate(release, now);
    }
    return data;
  }

  get readableBytes(): number {
    return this.receiver?.readableBytes ?? 0;
  }

  /** Sends what the windows allow now (room opened up in the peer's flight limit). */
  sendMore(now: Millis): void {
    if (this.current === 'ESTABLISHED' || this.current === 'CLOSE_WAIT') this.pump(now);
  }

  /** Graceful close: FIN once every queued byte has been acknowledged. */
  close(now: Millis): void {
    if (this.closing.requested || this.done) return;
    this.closing.requested = true;
    if (this.current === 'ESTABLISHED' || this.current === 'CLOSE_WAIT') this.pump(now);
  }

  /** Ends the connection at once: RST to the peer (carrying `rstPayload`), then closed with `reason`. */
  abort(now: Millis, reason: CloseReason = 'aborted', rstPayload: Uint8Array = EMPTY): void {
    if (this.done) return;
    if (this.current !== 'TIME_WAIT') this.emit(Flag.RST, this.sender.sndNxt, 0, rstPayload, now);
    this.finish(reason);
  }

  /** Aborts the connection (reason 'expired') once `at` is reached, whatever it is doing then. */
  expireAt(at: Millis): void {
    this.timers.set(Timer.Expiry, at);
  }

  // ---- packets ----

  handlePacket(p: Packet, now: Millis): void {
    if (this.done) return;
    this.heardFrom(now);
    if (p.flags & Flag.RST) {
      if (this.current === 'TIME_WAIT') this.finish('closed');
      else this.finish(this.current === 'SYN_SENT' ? 'refused' : 'reset', decodeResetCause(p.payload));
      return;
    }
    if (this.current === 'SYN_SENT') {
      // The SYN-ACK acknowledges our SYN, and the data it carried if the peer took it.
      const synAck = (p.flags & (Flag.SYN | Flag.ACK)) === (Flag.SYN | Flag.ACK);
      if (synAck && seqGe(p.ack, this.sender.sndUna) && seqLe(p.ack, this.sender.sndNxt)) this.onSynAck(p, now);
      return;
    }
    if (p.flags & Flag.SYN) {
      // Our ACK (or our SYN-ACK) was lost: repeat it.
      if (p.flags & Flag.ACK) this.sendAck(now);
      else if (this.receiver && p.seq === this.opening.peerSynSeq) this.sendSynAck(now);
      return;
    }
    if (p.flags & Flag.FIN) {
      this.onFin(p, now);
      return;
    }
    if (p.flags & Flag.ACK) this.onAckSegment(p, now);
  }

  /** True when a SYN is a retransmission of the one this connection was opened by. */
  isDuplicateSyn(p: Packet): boolean {
    return this.receiver !== undefined && p.seq === this.opening.peerSynSeq && !this.finished;
  }

  private onSynAck(p: Packet, now: Millis): void {
    this.opening.peerSynSeq = p.seq;
    this.receiver = this.newReceiver(seqAdd(p.seq, 1));
    const rtt = this.opening.synAnswered(now);
    if (rtt !== undefined) this.sender.rtt.sample(rtt);
    this.sender.onAck({ ack: p.ack, window: p.window, sack: null, payloadLength: 0 }, now);
    // Data sent with the SYN that the peer did not take goes again at once.
    if (this.sender.inFlightBytes > 0) this.sender.resendAll();
    this.timers.clear(Timer.Syn);
    this.current = 'ESTABLISHED';
    this.heardFrom(now);
    this.sink.event({ type: 'connected', connId: this.id });
    // The responder is ESTABLISHED since its SYN-ACK (in the reference too) and waits for nothing,
    // so the handshake's last ACK is a delayed ACK: it rides on the first data segment, which
    // usually follows at once, instead of costing the peer a datagram of its own.
    this.acks.deferHandshakeAck();
    this.timers.set(Timer.DelayedAck, now + this.opts.delayedAckMs);
    this.pump(now);
  }

  private onAckSegment(p: Packet, now: Millis): void {
    const rtt = this.opening.synAckAnswered(now);
    if (rtt !== undefined && !this.sender.rtt.sampled) this.sender.rtt.sample(rtt);
    const sack = p.payload.length >= 5 ? decodeSack(p.payload) : null;
    this.ackOurFin(p.ack);
    const ack = this.closing.dataAck(p.ack);
    const dataLength = sack ? 0 : p.payload.length;
    const before = this.sender.spaceLeft;
    this.sender.onAck({ ack, window: p.window, sack, payloadLength: dataLength }, now);
    if (dataLength > 0) this.onData(p, now);
    if (this.wantWritable && this.sender.spaceLeft > before && this.sender.spaceLeft > 0) {
      this.wantWritable = false;
      this.sink.event({ type: 'writable', connId: this.id });
    }
    if (this.finished) return;
    this.pump(now);
  }

  /** The window opened (or held data became acknowledgeable); see AckPolicy.duplicatesAfterUpdate. */
  private sendWindowUpdate(release: boolean, now: Millis): void {
    this.sendAck(now);
    const copies = this.acks.duplicatesAfterUpdate(release);
    for (let i = 0; i < copies; i++)
      this.emit(Flag.ACK, this.closing.sendSeq(this.sender.sndNxt), this.ackField(), EMPTY, now);
  }

  private onData(p: Packet, now: Millis): void {
    const r = this.receiver;
    if (!r) return;
    this.recvCounters.segmentsRecv++;
    if (r.finSeq !== undefined && !seqLt(p.seq, r.finSeq)) {
      this.sendAck(now);
      return;
    }
    const hadHoles = r.hasOutOfOrder;
    const hadReadable = r.readableBytes > 0;
    const before = r.rcvNxt;
    const verdict = r.onData(p.seq, p.payload);
    if (verdict === 'in_order') {
      this.recvCounters.bytesRecv += (r.rcvNxt - before) >>> 0;
      if (!hadReadable) this.sink.event({ type: 'readable', connId: this.id });
      if (this.acks.ackNowForInOrder(r, hadHoles)) this.sendAck(now);
      else this.timers.arm(Timer.DelayedAck, now + this.opts.delayedAckMs);
      this.checkPeerFin(now);
    } else {
      if (verdict === 'beyond_window') this.acks.noteDroppedBeyondWindow();
      this.sendAck(now);
    }
  }

  private onFin(p: Packet, now: Millis): void {
    const r = this.receiver;
    if (p.flags & Flag.ACK) this.ackOurFin(p.ack);
    if (!r) return;
    const firstFin = r.finSeq === undefined;
    if (firstFin) r.finSeq = seqLt(p.seq, r.rcvNxt) ? r.rcvNxt : p.seq;
    const isFinAck = (p.flags & Flag.ACK) !== 0;
    if (this.current === 'TIME_WAIT') {
      if (!isFinAck) this.answerFin(now);
      return;
    }
    if (!r.finReached) {
      // Data before the FIN is still missing: ask for it.
      this.sendAck(now);
      return;
    }
    this.checkPeerFin(now);
    if (!isFinAck) this.answerFin(now);
    if (!this.finished) this.pump(now);
  }

  /** Acknowledges the peer's FIN: FIN|ACK if we already sent ours (as the reference answers), else ACK. */
  private answerFin(now: Millis): void {
    const r = this.receiver;
    if (!r || r.finSeq === undefined) return;
    if (this.closing.sent) this.emit(Flag.FIN | Flag.ACK, this.closing.seq, seqAdd(r.finSeq, 1), EMPTY, now);
    else this.sendAck(now);
  }

  private ackOurFin(ack: number): void {
    if (this.closing.acknowledges(ack)) this.timers.clear(Timer.Fin);
  }

  private checkPeerFin(now: Millis): void {
    const r = this.receiver;
    if (!r?.finReached || !this.closing.reportEnd()) return;
    this.timers.clear(Timer.DelayedAck);
    if (this.current === 'ESTABLISHED') this.current = 'CLOSE_WAIT';
    this.sink.event({ type: 'end', connId: this.id });
    this.maybeTimeWait(now);
  }

  private maybeTimeWait(now: Millis): void {
    if (this.closing.bothFinished && this.current !== 'TIME_WAIT') this.enterTimeWait(now);
  }

  private enterTimeWait(now: Millis): void {
    this.current = 'TIME_WAIT';
    this.timers.clearAll();
    this.sender.discard();
    this.emitClosed('closed');
    if (this.opts.timeWaitMs <= 0) this.done = true;
    else this.timers.set(Timer.TimeWait, now + this.opts.timeWaitMs);
  }

  // ---- sending ----

  /** Sends whatever the windows allow, then the FIN when everything is acknowledged. */
  private pump(now: Millis, flushNagle = false): void {
    if (this.done) return;
    if (!this.closing.sent) {
      let seg: ReturnType<typeof this.sender.nextSegment>;
      let first = true;
      while ((seg = this.sender.nextSegment(now, this.closing.requested || (flushNagle && first)))) {
        first = false;
        this.emit(Flag.ACK, seg.seq, this.ackField(), seg.data, now);
        this.acks.sent();
        this.timers.clear(Timer.DelayedAck);
      }
    }
    if (this.sender.nagleHolding && !this.closing.requested)
      this.timers.arm(Timer.Nagle, now + this.sender.nagleHoldMs);
    else this.timers.clear(Timer.Nagle);
    if (this.sender.zeroWindow && this.sender.inFlightBytes === 0 && this.sender.unsentBytes > 0) {
      this.timers.arm(Timer.Persist, now + this.persistInterval);
    } else {
      this.timers.clear(Timer.Persist);
      this.persistInterval = 500;
    }
    if (
      this.closing.requested &&
      !this.closing.sent &&
      this.sender.unsentBytes === 0 &&
      this.sender.inFlightBytes === 0
    )
      this.sendFin(now);
    this.maybeTimeWait(now);
  }

  private sendFin(now: Millis): void {
    // The FIN is bare (see transmitFin): an ACK still being delayed goes out with it now rather
    // than on its own later, so that the peer, which may hold its own FIN until its data is
    // acknowledged, can finish at once.
    if (this.timers.get(Timer.DelayedAck) !== undefined) this.sendAck(now);
    this.closing.start(this.sender.sndNxt);
    this.current = 'FIN_WAIT';
    this.transmitFin(now);
  }

  private transmitFin(now: Millis): void {
    // Always a bare FIN: a peer in TIME_WAIT answers FIN but stays silent on FIN|ACK.
    this.emit(Flag.FIN, this.closing.seq, 0, EMPTY, now);
    this.timers.set(Timer.Fin, this.closing.transmitted(now, this.sender.rtt.rto, this.opts.maxRtoMs));
  }

  private sendAck(now: Millis): void {
    const payload = this.acks.payload(this.receiver);
    this.emit(Flag.ACK, this.closing.sendSeq(this.sender.sndNxt), this.ackField(), payload, now);
    this.acks.sent();
    this.timers.clear(Timer.DelayedAck);
  }

  private ackField(): number {
    const r = this.receiver;
    if (!r) return 0;
    return r.finReached && r.finSeq !== undefined ? seqAdd(r.finSeq, 1) : r.ackNumber();
  }

  private emit(flags: number, seq: number, ack: number, payload: Uint8Array, now: Millis): void {
    const window = flags & (Flag.FIN | Flag.RST) ? 0 : this.acks.window(this.receiver);
    if (!(flags & (Flag.FIN | Flag.RST))) this.acks.advertised(window);
    this.lastSendAt = now;
    if (this.open && this.opts.keepaliveMs > 0) this.timers.set(Timer.Keepalive, now + this.opts.keepaliveMs);
    this.sink.transmit(
      makePacket({
        flags,
        protocol: Proto.Stream,
        src: this.localAddr,
        dst: this.remote.addr,
        srcPort: this.localPort,
        dstPort: this.remote.port,
        seq,
        ack,
        window,
        payload,
      }),
    );
  }

  // ---- timers ----

  nextTimeout(): Millis | undefined {
    if (this.done) return undefined;
    if (this.current === 'TIME_WAIT') return this.timers.get(Timer.TimeWait);
    return this.timers.next();
  }

  /** Past the handshake and before TIME_WAIT: the idle and keepalive timers run. */
  private get open(): boolean {
    return !this.done && this.current !== 'SYN_SENT' && this.current !== 'TIME_WAIT';
  }

  private heardFrom(now: Millis): void {
    if (this.open && this.opts.idleTimeoutMs > 0) this.timers.set(Timer.Idle, now + this.opts.idleTimeoutMs);
  }

  handleTimeout(now: Millis): void {
    if (this.done) return;
    if (this.current === 'TIME_WAIT') {
      if (this.timers.isExpired(Timer.TimeWait, now)) this.done = true;
      return;
    }
    if (this.timers.isExpired(Timer.Expiry, now)) {
      this.abort(now, 'expired');
      return;
    }
    if (this.current === 'SYN_SENT') {
      if (this.timers.isExpired(Timer.Syn, now)) {
        if (this.opening.synXmits >= this.opts.maxSynRetries) this.finish('dial_timeout');
        else this.sendSyn(now);
      }
      return;
    }
    if (this.timers.isExpired(Timer.Idle, now)) {
      this.emit(Flag.RST, this.sender.sndNxt, 0, EMPTY, now);
      this.finish('idle_timeout');
      return;
    }
    if (this.timers.isExpired(Timer.Rto, now)) {
      if (!this.sender.onRtoTimeout(now)) {
        this.emit(Flag.RST, this.sender.sndNxt, 0, EMPTY, now);
        this.finish('retransmit_timeout');
        return;
      }
    }
    if (this.timers.isExpired(Timer.Reorder, now)) this.sender.onReorderTimeout(now);
    if (this.timers.isExpired(Timer.Probe, now)) this.sender.onProbeTimeout();
    if (this.timers.isExpired(Timer.Fin, now)) {
      if (this.closing.exhausted(this.opts.maxRetransmits)) {
        this.finish('closed');
        return;
      }
      this.transmitFin(now);
    }
    if (this.timers.fire(Timer.Persist, now)) {
      this.persistInterval = Math.min(this.persistInterval * 2, 30_000);
      const seg = this.sender.probe(now);
      if (seg) this.emit(Flag.ACK, seg.seq, this.ackField(), seg.data, now);
    }
    if (this.timers.isExpired(Timer.DelayedAck, now)) this.sendAck(now);
    const flushNagle = this.timers.fire(Timer.Nagle, now);
    this.pump(now, flushNagle);
    if (this.timers.fire(Timer.Keepalive, now)) {
      // One already-acknowledged byte: every receiver answers it with an ACK, which keeps both sides alive.
      if (this.sender.inFlightBytes === 0)
        this.emit(Flag.ACK, seqAdd(this.sender.sndUna, -1), this.ackField(), KEEPALIVE_BYTE, now);
      else this.timers.set(Timer.Keepalive, now + this.opts.keepaliveMs);
    }
  }

  // ---- teardown ----

  /** Closed, or lingering in TIME_WAIT: no more data either way. */
  get finished(): boolean {
    return this.done || this.current === 'TIME_WAIT';
  }

  private finish(reason: CloseReason, cause?: ResetCause): void {
    this.timers.clearAll();
    this.sender.discard();
    this.current = 'CLOSED';
    this.done = true;
    this.emitClosed(reason, cause);
  }

  private emitClosed(reason: CloseReason, cause?: ResetCause): void {
    if (!this.closing.reportClosed()) return;
    this.sink.event(
      cause === undefined
        ? { type: 'closed', connId: this.id, reason }
        : { type: 'closed', connId: this.id, reason, cause },
    );
  }

  /** Turns Nagle's coalescing of small writes on or off for this connection (like TCP_NODELAY). */
  setNagle(on: boolean, now: Millis): void {
    this.opts.nagle = on;
    if (!on && this.current === 'ESTABLISHED') this.pump(now, true);
  }

  /**
   * Changes the largest payload this connection puts in one segment (the peer said it accepts
   * more). Segments already sent keep their size; later ones use the new one.
   */
  setSegmentSize(mss: number): void {
    if (this.opts.mss === mss) return;
    this.opts.mss = mss;
    this.sender.cc.setMss(mss);
    this.receiver?.grow(receiveBufferBytes(mss, this.opts.recvBufferBytes));
  }

  /**
   * Whether the peer stops at a zero window (it proved to be pilot-ts) or reads it as "no limit"
   * (the reference). Data held for the latter is acknowledged at once when the peer turns out to
   * be the former.
   */
  setPeerHonoursZeroWindow(on: boolean): void {
    if (this.opts.peerHonoursZeroWindow === on) return;
    this.opts.peerHonoursZeroWindow = on;
    const r = this.receiver;
    if (!r) return;
    const wasHolding = r.holding;
    r.slackBytes = on ? 0 : LEGACY_SLACK_BYTES;
    if (!on) return;
    this.acks.forgetDrops();
    if (wasHolding && !this.finished) this.sendAck(this.lastSendAt);
  }

  info(): ConnectionInfo {
    return {
      id: this.id,
      state: this.current,
      localPort: this.localPort,
      remote: this.remote,
      stats: connectionStats(this.sender, this.receiver, this.recvCounters, this.opts),
    };
  }
}
