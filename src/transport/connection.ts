import type { Addr, SocketAddr } from '../protocol/address.js';
import { Flag, Proto, makePacket, type Packet } from '../protocol/packet.js';
import { decodeSack, encodeSack } from '../protocol/sack.js';
import { connectionStats, type ReceiveCounters } from './connection-stats.js';
import { StreamReceiver } from './receiver.js';
import { StreamSender, WINDOW_UNIT } from './sender.js';
import { earliest } from './deadline.js';
import { decodeResetCause, type ResetCause } from './reset-cause.js';
import { seqAdd, seqLt } from './seq.js';
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
 * What a receiver takes beyond its buffer from a peer that reads a zero window as "no limit": such
 * a sender may send while its bytes in flight are below the window, so it can have one window unit
 * plus one segment (of at most one unit) beyond the last ACK, and the smallest window it is shown
 * is one unit.
 */
const LEGACY_SLACK_BYTES = 2 * WINDOW_UNIT;
/** Duplicate ACKs that make a reference sender retransmit at once (PROTOCOL.md §7.8). */
const DUP_ACK_THRESHOLD = 3;

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
  state: ConnState = 'CLOSED';
  /** Set once the connection has finished; the endpoint drops it then. */
  gone = false;

  private readonly opts: ConnectionOptions;
  private readonly sink: ConnectionSink;
  private readonly localAddr: Addr;
  private readonly sender: StreamSender;
  private receiver: StreamReceiver | undefined;

  private synSentAt: Millis = 0;
  private synXmits = 0;
  private synDeadline: Millis | undefined;
  private peerSynSeq = 0;

  private closeRequested = false;
  private finSeq = 0;
  private finSent = false;
  private finAcked = false;
  private finXmits = 0;
  private finDeadline: Millis | undefined;
  private endEmitted = false;
  private closedEmitted = false;

  private ackPending = 0;
  private delayedAckDeadline: Millis | undefined;
  private nagleDeadline: Millis | undefined;
  private persistDeadline: Millis | undefined;
  private persistInterval = 500;
  private timeWaitDeadline: Millis | undefined;
  /** The connection is aborted at this time whatever its state (see PortPolicy.maxLifetimeMs). */
  private expiresAt: Millis | undefined;
  private lastRecvAt: Millis = 0;
  private lastSendAt: Millis = 0;
  private lastAdvertised = 0;
  private wantWritable = false;
  /** Data from a peer that ignores a zero window was dropped beyond the window. */
  private droppedBeyondWindow = false;

  private readonly recvCounters: ReceiveCounters = { segmentsRecv: 0, bytesRecv: 0, sackBlocksSent: 0 };

  constructor(p: ConnectionParams) {
    this.id = p.id;
    this.localAddr = p.localAddr;
    this.localPort = p.localPort;
    this.remote = p.remote;
    // A private copy: the segment size can change per connection (setSegmentSize).
    this.opts = { ...p.options };
    this.sink = p.sink;
    this.sender = new StreamSender(this.opts.isn, this.opts);
  }

  // ---- opening ----

  dial(now: Millis): void {
    this.state = 'SYN_SENT';
    this.lastRecvAt = now;
    this.sendSyn(now);
  }

  /** Responder side: the SYN was checked by the endpoint; answer and become ESTABLISHED (as the reference). */
  acceptSyn(syn: Packet, now: Millis): void {
    this.peerSynSeq = syn.seq;
    this.receiver = this.newReceiver(seqAdd(syn.seq, 1));
    this.sender.onAck({ ack: this.sender.sndUna, window: syn.window, sack: null, payloadLength: 0 }, now);
    this.state = 'ESTABLISHED';
    this.lastRecvAt = now;
    this.sendSynAck(now);
  }

  private newReceiver(rcvNxt: number): StreamReceiver {
    const r = new StreamReceiver(rcvNxt, this.opts.recvBufferBytes);
    r.slackBytes = this.opts.peerHonoursZeroWindow ? 0 : LEGACY_SLACK_BYTES;
    return r;
  }

  private sendSyn(now: Millis): void {
    this.synXmits++;
    this.synSentAt = now;
    this.synDeadline = now + Math.min(this.opts.initialRtoMs * 2 ** (this.synXmits - 1), 8_000);
    this.emit(Flag.SYN, this.opts.isn, 0, EMPTY, now);
  }

  private sendSynAck(now: Millis): void {
    this.emit(Flag.SYN | Flag.ACK, this.opts.isn, seqAdd(this.peerSynSeq, 1), EMPTY, now);
  }

  // ---- application interface ----

  write(data: Uint8Array, now: Millis): number {
    if (this.closeRequested || this.gone || this.state === 'TIME_WAIT') return 0;
    const n = this.sender.queue(data);
    if (n < data.length) this.wantWritable = true;
    if (this.state === 'ESTABLISHED' || this.state === 'CLOSE_WAIT') this.pump(now);
    return n;
  }

  read(maxBytes: number): Buffer | null {
    const r = this.receiver;
    if (!r) return null;
    const wasHolding = r.holding;
    const data = r.read(maxBytes);
    if (data && !this.gone && this.state !== 'TIME_WAIT') {
      const win = this.advertisedWindow();
      const step = Math.max(2, Math.floor(this.opts.recvBufferBytes / WINDOW_UNIT / 4));
      const release = wasHolding && !r.holding;
      if (release || win - this.lastAdvertised >= step || (this.lastAdvertised < 2 && win >= 2))
        this.sendWindowUpdate(release, this.lastSendAt);
    }
    return data;
  }

  get readableBytes(): number {
    return this.receiver?.readableBytes ?? 0;
  }

  /** Graceful close: FIN once every queued byte has been acknowledged. */
  close(now: Millis): void {
    if (this.closeRequested || this.gone) return;
    this.closeRequested = true;
    if (this.state === 'ESTABLISHED' || this.state === 'CLOSE_WAIT') this.pump(now);
  }

  /** Ends the connection at once: RST to the peer (carrying `rstPayload`), then closed with `reason`. */
  abort(now: Millis, reason: CloseReason = 'aborted', rstPayload: Uint8Array = EMPTY): void {
    if (this.gone) return;
    if (this.state !== 'TIME_WAIT') this.emit(Flag.RST, this.sender.sndNxt, 0, rstPayload, now);
    this.finish(reason);
  }

  /** Aborts the connection (reason 'expired') once `at` is reached, whatever it is doing then. */
  expireAt(at: Millis): void {
    this.expiresAt = at;
  }

  // ---- packets ----

  handlePacket(p: Packet, now: Millis): void {
    if (this.gone) return;
    this.lastRecvAt = now;
    if (p.flags & Flag.RST) {
      if (this.state === 'TIME_WAIT') this.finish('closed');
      else this.finish(this.state === 'SYN_SENT' ? 'refused' : 'reset', decodeResetCause(p.payload));
      return;
    }
    if (this.state === 'SYN_SENT') {
      if ((p.flags & (Flag.SYN | Flag.ACK)) === (Flag.SYN | Flag.ACK) && p.ack === this.sender.sndUna)
        this.onSynAck(p, now);
      return;
    }
    if (p.flags & Flag.SYN) {
      // Our ACK (or our SYN-ACK) was lost: repeat it.
      if (p.flags & Flag.ACK) this.sendAck(now);
      else if (this.receiver && p.seq === this.peerSynSeq) this.sendSynAck(now);
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
    return this.receiver !== undefined && p.seq === this.peerSynSeq && !this.finished;
  }

  private onSynAck(p: Packet, now: Millis): void {
    this.peerSynSeq = p.seq;
    this.receiver = this.newReceiver(seqAdd(p.seq, 1));
    if (this.synXmits === 1) this.sender.rtt.sample(now - this.synSentAt);
    this.sender.onAck({ ack: p.ack, window: p.window, sack: null, payloadLength: 0 }, now);
    this.synDeadline = undefined;
    this.state = 'ESTABLISHED';
    this.sink.event({ type: 'connected', connId: this.id });
    // The responder is ESTABLISHED since its SYN-ACK (in the reference too) and waits for nothing,
    // so the handshake's last ACK is a delayed ACK: it rides on the first data segment, which
    // usually follows at once, instead of costing the peer a datagram of its own.
    this.ackPending = 1;
    this.delayedAckDeadline = now + this.opts.delayedAckMs;
    this.pump(now);
  }

  private onAckSegment(p: Packet, now: Millis): void {
    const sack = p.payload.length >= 5 ? decodeSack(p.payload) : null;
    this.ackOurFin(p.ack);
    const ack = this.finSent && p.ack === seqAdd(this.finSeq, 1) ? this.finSeq : p.ack;
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

  /**
   * The window opened (or held data became acknowledgeable). To a peer that ignores a zero window
   * the update is repeated: a lost release would leave the sender waiting, since it probes with
   * bare ACKs that get no answer; after a drop, three duplicates follow (bare, without SACK, the
   * only kind a reference sender counts) so that it retransmits at once rather than on its timer.
   */
  private sendWindowUpdate(release: boolean, now: Millis): void {
    this.sendAck(now);
    if (this.opts.peerHonoursZeroWindow) return;
    const copies = this.droppedBeyondWindow ? DUP_ACK_THRESHOLD : release ? 1 : 0;
    this.droppedBeyondWindow = false;
    for (let i = 0; i < copies; i++)
      this.emit(Flag.ACK, this.finSent ? this.finSeq : this.sender.sndNxt, this.ackField(), EMPTY, now);
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
      // Held data is SACKed at once, before the sender's retransmission timer fires.
      if (hadHoles || r.hasOutOfOrder || r.holding || ++this.ackPending >= 2) this.sendAck(now);
      else if (this.delayedAckDeadline === undefined) this.delayedAckDeadline = now + this.opts.delayedAckMs;
      this.checkPeerFin(now);
    } else {
      if (verdict === 'beyond_window' && !this.opts.peerHonoursZeroWindow) this.droppedBeyondWindow = true;
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
    if (this.state === 'TIME_WAIT') {
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
    if (this.finSent) this.emit(Flag.FIN | Flag.ACK, this.finSeq, seqAdd(r.finSeq, 1), EMPTY, now);
    else this.sendAck(now);
  }

  private ackOurFin(ack: number): void {
    if (!this.finSent || this.finAcked || ack !== seqAdd(this.finSeq, 1)) return;
    this.finAcked = true;
    this.finDeadline = undefined;
  }

  private checkPeerFin(now: Millis): void {
    const r = this.receiver;
    if (!r?.finReached || this.endEmitted) return;
    this.endEmitted = true;
    this.delayedAckDeadline = undefined;
    if (this.state === 'ESTABLISHED') this.state = 'CLOSE_WAIT';
    this.sink.event({ type: 'end', connId: this.id });
    this.maybeTimeWait(now);
  }

  private maybeTimeWait(now: Millis): void {
    if (this.finAcked && this.endEmitted && this.state !== 'TIME_WAIT') this.enterTimeWait(now);
  }

  private enterTimeWait(now: Millis): void {
    this.state = 'TIME_WAIT';
    this.clearTimers();
    this.sender.discard();
    this.emitClosed('closed');
    if (this.opts.timeWaitMs <= 0) this.gone = true;
    else this.timeWaitDeadline = now + this.opts.timeWaitMs;
  }

  // ---- sending ----

  /** Sends whatever the windows allow, then the FIN when everything is acknowledged. */
  private pump(now: Millis, flushNagle = false): void {
    if (this.gone) return;
    if (!this.finSent) {
      let seg: ReturnType<typeof this.sender.nextSegment>;
      let first = true;
      while ((seg = this.sender.nextSegment(now, this.closeRequested || (flushNagle && first)))) {
        first = false;
        this.emit(Flag.ACK, seg.seq, this.ackField(), seg.data, now);
        this.ackPending = 0;
        this.delayedAckDeadline = undefined;
      }
    }
    this.nagleDeadline =
      this.sender.nagleHolding && !this.closeRequested
        ? (this.nagleDeadline ?? now + this.sender.nagleHoldMs)
        : undefined;
    if (this.sender.zeroWindow && this.sender.inFlightBytes === 0 && this.sender.unsentBytes > 0) {
      this.persistDeadline ??= now + this.persistInterval;
    } else {
      this.persistDeadline = undefined;
      this.persistInterval = 500;
    }
    if (this.closeRequested && !this.finSent && this.sender.unsentBytes === 0 && this.sender.inFlightBytes === 0)
      this.sendFin(now);
    this.maybeTimeWait(now);
  }

  private sendFin(now: Millis): void {
    this.finSeq = this.sender.sndNxt;
    this.finSent = true;
    this.state = 'FIN_WAIT';
    this.finXmits = 0;
    this.transmitFin(now);
  }

  private transmitFin(now: Millis): void {
    this.finXmits++;
    // Always a bare FIN: a peer in TIME_WAIT answers FIN but stays silent on FIN|ACK.
    this.emit(Flag.FIN, this.finSeq, 0, EMPTY, now);
    this.finDeadline = now + Math.min(this.sender.rtt.rto * 2 ** (this.finXmits - 1), this.opts.maxRtoMs);
  }

  private sendAck(now: Millis): void {
    const r = this.receiver;
    let payload: Uint8Array = EMPTY;
    if (r && (r.hasOutOfOrder || r.holding)) {
      const blocks = r.sackBlocks();
      if (blocks.length > 0) {
        payload = encodeSack(blocks);
        this.recvCounters.sackBlocksSent += blocks.length;
      }
    }
    this.emit(Flag.ACK, this.finSent ? this.finSeq : this.sender.sndNxt, this.ackField(), payload, now);
    this.ackPending = 0;
    this.delayedAckDeadline = undefined;
  }

  private ackField(): number {
    const r = this.receiver;
    if (!r) return 0;
    return r.finReached && r.finSeq !== undefined ? seqAdd(r.finSeq, 1) : r.ackNumber();
  }

  /** Free receive space in window units; never 0 to a peer that would read 0 as "no limit". */
  private advertisedWindow(): number {
    const r = this.receiver;
    const free = r ? r.windowBytes : this.opts.recvBufferBytes;
    const units = Math.min(0xffff, Math.floor(free / WINDOW_UNIT));
    return this.opts.peerHonoursZeroWindow ? units : Math.max(1, units);
  }

  private emit(flags: number, seq: number, ack: number, payload: Uint8Array, now: Millis): void {
    const window = flags & (Flag.FIN | Flag.RST) ? 0 : this.advertisedWindow();
    if (!(flags & (Flag.FIN | Flag.RST))) this.lastAdvertised = window;
    this.lastSendAt = now;
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
    if (this.gone) return undefined;
    if (this.state === 'TIME_WAIT') return this.timeWaitDeadline;
    let t = earliest(this.synDeadline, this.expiresAt);
    t = earliest(t, this.delayedAckDeadline);
    t = earliest(t, this.nagleDeadline);
    t = earliest(t, this.persistDeadline);
    t = earliest(t, this.finDeadline);
    t = earliest(t, this.sender.rtoDeadline);
    t = earliest(t, this.sender.reorderDeadline);
    if (this.state !== 'SYN_SENT') {
      if (this.opts.idleTimeoutMs > 0) t = earliest(t, this.lastRecvAt + this.opts.idleTimeoutMs);
      if (this.opts.keepaliveMs > 0 && this.sender.inFlightBytes === 0)
        t = earliest(t, this.lastSendAt + this.opts.keepaliveMs);
    }
    return t;
  }

  handleTimeout(now: Millis): void {
    if (this.gone) return;
    if (this.state === 'TIME_WAIT') {
      if (this.timeWaitDeadline !== undefined && now >= this.timeWaitDeadline) this.gone = true;
      return;
    }
    if (this.expiresAt !== undefined && now >= this.expiresAt) {
      this.abort(now, 'expired');
      return;
    }
    if (this.state === 'SYN_SENT') {
      if (this.synDeadline !== undefined && now >= this.synDeadline) {
        if (this.synXmits >= this.opts.maxSynRetries) this.finish('dial_timeout');
        else this.sendSyn(now);
      }
      return;
    }
    if (this.opts.idleTimeoutMs > 0 && now >= this.lastRecvAt + this.opts.idleTimeoutMs) {
      this.emit(Flag.RST, this.sender.sndNxt, 0, EMPTY, now);
      this.finish('idle_timeout');
      return;
    }
    if (this.sender.rtoDeadline !== undefined && now >= this.sender.rtoDeadline) {
      if (!this.sender.onRtoTimeout(now)) {
        this.emit(Flag.RST, this.sender.sndNxt, 0, EMPTY, now);
        this.finish('retransmit_timeout');
        return;
      }
    }
    if (this.sender.reorderDeadline !== undefined && now >= this.sender.reorderDeadline)
      this.sender.onReorderTimeout(now);
    if (this.finDeadline !== undefined && now >= this.finDeadline) {
      if (this.finXmits > this.opts.maxRetransmits) {
        this.finish('closed');
        return;
      }
      this.transmitFin(now);
    }
    if (this.persistDeadline !== undefined && now >= this.persistDeadline) {
      this.persistDeadline = undefined;
      this.persistInterval = Math.min(this.persistInterval * 2, 30_000);
      const seg = this.sender.probe(now);
      if (seg) this.emit(Flag.ACK, seg.seq, this.ackField(), seg.data, now);
    }
    if (this.delayedAckDeadline !== undefined && now >= this.delayedAckDeadline) this.sendAck(now);
    const flushNagle = this.nagleDeadline !== undefined && now >= this.nagleDeadline;
    if (flushNagle) this.nagleDeadline = undefined;
    this.pump(now, flushNagle);
    if (
      this.opts.keepaliveMs > 0 &&
      this.sender.inFlightBytes === 0 &&
      now >= this.lastSendAt + this.opts.keepaliveMs
    ) {
      // One already-acknowledged byte: every receiver answers it with an ACK, which keeps both sides alive.
      this.emit(Flag.ACK, seqAdd(this.sender.sndUna, -1), this.ackField(), KEEPALIVE_BYTE, now);
    }
  }

  // ---- teardown ----

  /** Closed, or lingering in TIME_WAIT: no more data either way. */
  get finished(): boolean {
    return this.gone || this.state === 'TIME_WAIT';
  }

  private finish(reason: CloseReason, cause?: ResetCause): void {
    this.clearTimers();
    this.sender.discard();
    this.state = 'CLOSED';
    this.gone = true;
    this.emitClosed(reason, cause);
  }

  private emitClosed(reason: CloseReason, cause?: ResetCause): void {
    if (this.closedEmitted) return;
    this.closedEmitted = true;
    this.sink.event(
      cause === undefined
        ? { type: 'closed', connId: this.id, reason }
        : { type: 'closed', connId: this.id, reason, cause },
    );
  }

  private clearTimers(): void {
    this.synDeadline = undefined;
    this.delayedAckDeadline = undefined;
    this.nagleDeadline = undefined;
    this.persistDeadline = undefined;
    this.finDeadline = undefined;
    this.timeWaitDeadline = undefined;
    this.expiresAt = undefined;
  }

  /** Turns Nagle's coalescing of small writes on or off for this connection (like TCP_NODELAY). */
  setNagle(on: boolean, now: Millis): void {
    this.opts.nagle = on;
    if (!on && this.state === 'ESTABLISHED') this.pump(now, true);
  }

  /**
   * Changes the largest payload this connection puts in one segment (the peer said it accepts
   * more). Segments already sent keep their size; later ones use the new one.
   */
  setSegmentSize(mss: number): void {
    if (this.opts.mss === mss) return;
    this.opts.mss = mss;
    this.sender.cc.setMss(mss);
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
    this.droppedBeyondWindow = false;
    if (wasHolding && !this.finished) this.sendAck(this.lastSendAt);
  }

  info(): ConnectionInfo {
    return {
      id: this.id,
      state: this.state,
      localPort: this.localPort,
      remote: this.remote,
      stats: connectionStats(this.sender, this.receiver, this.recvCounters, this.opts),
    };
  }
}
