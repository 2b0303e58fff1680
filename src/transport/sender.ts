import { looksLikeSack, type SackBlock } from '../protocol/sack.js';
import { sharedBlockPool } from './block-pool.js';
import { VIEW_AT_LEAST } from './byte-queue.js';
import { NewReno } from './congestion.js';
import type { FlightResume, PeerFlight } from './peer-flight.js';
import { RttEstimator } from './rtt.js';
import { SendBuffer } from './send-buffer.js';
import { SegmentQueue } from './segment-queue.js';
import { seqAdd, seqDiff, seqGe, seqGt, seqLe, seqLt } from './seq.js';
import { type AckInfo, type OutSegment, type Segment, type SenderCounters, WINDOW_UNIT } from './sender-types.js';
import { Timer, type TimerTable } from './timers.js';
import type { ConnectionOptions, Millis } from './types.js';

/** A tail loss probe waits at least this long, and for the peer's delayed ACK when one segment is out. */
const PROBE_MIN_MS = 10;

/**
 * Send side of a stream: the unsent queue, the retransmission scoreboard (SACK + RACK-style
 * time-based loss detection), tail loss probes, RTO, NewReno congestion control and the peer's window.
 */
export class StreamSender {
  sndUna: number;
  sndNxt: number;
  readonly rtt: RttEstimator;
  readonly cc: NewReno;
  readonly counters: SenderCounters = {
    bytesSent: 0,
    segmentsSent: 0,
    retransmits: 0,
    fastRetransmits: 0,
    timeouts: 0,
    spuriousRetransmits: 0,
    dupAcks: 0,
    sackBlocksRecv: 0,
    tailProbes: 0,
  };
  peerWindowBytes: number;
  inRecovery = false;
  consecutiveTimeouts = 0;

  /** Unsent bytes, and the blocks of those in flight. */
  private readonly unsent = new SendBuffer(sharedBlockPool);
  private readonly segs = new SegmentQueue();
  private sackedBytes = 0;
  private lostBytes = 0;
  private rightEdge: number;
  private recoveryPoint = 0;
  private timeoutRecovery = false;
  private cwndLimited = false;
  private dupAckRun = 0;
  /** Window field of the previous ACK: a window update is not a duplicate ACK (RFC 5681). */
  private lastWindowField = -1;
  private rackSentAt = Number.NEGATIVE_INFINITY;
  private rackEndSeq: number;
  private rackRtt = 0;
  private reorderWindowScale = 1;
  /** A tail loss probe went out and no ACK has advanced since (one probe per silence). */
  private probed = false;
  /** Bytes of this connection counted in `flight` (its bytes in flight, until discard()). */
  private charged = 0;
  private released = false;

  constructor(
    isn: number,
    private readonly opts: ConnectionOptions,
    /** The connection's timers: the sender arms Timer.Rto and Timer.Reorder there. */
    private readonly timers: TimerTable,
    /** The limit shared with the other connections to the same peer, and how to resume this one. */
    private readonly flight?: { budget: PeerFlight; resume: FlightResume },
  ) {
    this.sndUna = seqAdd(isn, 1);
    this.sndNxt = this.sndUna;
    this.rackEndSeq = this.sndUna;
    this.rtt = new RttEstimator(opts.initialRtoMs, opts.minRtoMs, opts.maxRtoMs);
    this.cc = new NewReno(opts.mss, opts.initialCwnd, opts.maxCwnd);
    this.peerWindowBytes = 512 * WINDOW_UNIT;
    this.rightEdge = seqAdd(this.sndUna, this.peerWindowBytes);
    if (flight) flight.budget.users++;
  }

  get unsentBytes(): number {
    return this.unsent.length;
  }

  get inFlightBytes(): number {
    return seqDiff(this.sndNxt, this.sndUna);
  }

  /** RFC 6675 pipe: bytes believed to be in the network. */
  get pipe(): number {
    return this.inFlightBytes - this.sackedBytes - this.lostBytes;
  }

  get bufferedBytes(): number {
    return this.unsent.length + this.inFlightBytes;
  }

  get spaceLeft(): number {
    return Math.max(0, this.opts.sendBufferBytes - this.bufferedBytes);
  }

  get zeroWindow(): boolean {
    return seqLe(this.rightEdge, this.sndNxt) && this.peerWindowBytes === 0;
  }

  /**
   * Accepts as much of data as the send buffer has room for; returns the count. The bytes are
   * copied, so the caller may reuse `data` once this returns (as after a socket's write), unless
   * `copy` is false: then the caller hands `data` over and must never change it.
   */
  queue(data: Uint8Array, copy = true): number {
    const n = Math.min(data.length, this.spaceLeft);
    if (n > 0) this.unsent.append(data.subarray(0, n), copy);
    return n;
  }

  /** Discards everything not yet acknowledged (after a reset). */
  discard(): void {
    if (this.flight && !this.released) {
      this.released = true;
      this.flight.budget.bytes -= this.charged;
      this.flight.budget.users--;
      this.charged = 0;
    }
    this.unsent.clear();
    this.segs.clear();
    this.sackedBytes = 0;
    this.lostBytes = 0;
    this.timers.clear(Timer.Rto);
    this.timers.clear(Timer.Reorder);
    this.timers.clear(Timer.Probe);
  }

  /** Processes the ACK, window and SACK fields of a packet. Returns the bytes newly acknowledged. */
  onAck(info: AckInfo, now: Millis): number {
    const advances = seqGt(info.ack, this.sndUna) && seqLe(info.ack, this.sndNxt);
    const windowBytes = info.window * WINDOW_UNIT;
    // A Go keepalive is a bare ACK with window 0; only let a zero window in when it comes with news.
    const credible = info.window > 0 || advances || info.payloadLength > 0;
    if (credible && seqGe(info.ack, this.sndUna) && seqLe(info.ack, this.sndNxt)) {
      this.peerWindowBytes = windowBytes;
      this.rightEdge = seqAdd(info.ack, windowBytes);
    }

    let delivered = false;
    let acked = 0;
    if (advances) {
      acked = this.ackUpTo(info.ack, now);
      this.chargeFlight();
      delivered = true;
      this.dupAckRun = 0;
      this.consecutiveTimeouts = 0;
      // Forward progress ends the back-off even without a clean RTT sample (as Linux does).
      this.rtt.resetBackoff();
      if (this.inRecovery && seqGe(this.sndUna, this.recoveryPoint)) this.exitRecovery();
      if (!this.inRecovery) this.cc.onAck(acked, this.cwndLimited);
      this.probed = false;
      if (this.inFlightBytes > 0) this.timers.set(Timer.Rto, now + this.rtt.rto);
      else this.timers.clear(Timer.Rto);
    }
    if (info.sack && info.sack.length > 0) {
      this.counters.sackBlocksRecv += info.sack.length;
      if (this.applySack(info.sack, now)) delivered = true;
    } else if (
      !advances &&
      info.payloadLength === 0 &&
      this.inFlightBytes > 0 &&
      info.ack === this.sndUna &&
      info.window === this.lastWindowField
    ) {
      this.counters.dupAcks++;
      // Peers that never send SACK still get a classic fast retransmit on the 3rd duplicate ACK.
      if (++this.dupAckRun === 3) this.markLost(this.segs.firstUnsacked(), true);
    }
    this.lastWindowField = info.window;
    if (delivered) this.detectLosses(now);
    this.armProbe(now);
    return acked;
  }

  /**
   * The next segment to put on the wire, or null when the window, the congestion window,
   * Nagle or an empty queue say wait.
   */
  nextSegment(now: Millis, flush: boolean): OutSegment | null {
    const lost = this.lostBytes > 0 ? this.segs.firstLost() : undefined;
    if (lost) {
      if (this.pipe + lost.data.length > this.cc.cwnd && this.pipe > 0) {
        this.cwndLimited = true;
        return null;
      }
      return this.retransmit(lost, now);
    }
    const available = this.unsent.length;
    if (available === 0) {
      this.cwndLimited = false;
      return null;
    }
    const mss = this.opts.mss;
    const windowRoom = seqDiff(this.rightEdge, this.sndNxt);
    const cwndRoom = this.cc.cwnd - this.pipe;
    const flightRoom = this.flight ? this.flight.budget.room : Number.POSITIVE_INFINITY;
    const room = Math.min(windowRoom, cwndRoom, flightRoom);
    const want = Math.min(available, mss);
    if (room < want) {
      this.cwndLimited = cwndRoom < want;
      if (flightRoom < want) this.flight?.budget.wait(this.flight.resume);
      // Avoid silly small segments unless nothing at all is in flight.
      if (!(this.inFlightBytes === 0 && room > 0)) return null;
    }
    let len = Math.min(want, Math.max(room, 0));
    if (len <= 0) return null;
    if (len < mss && len === available && this.inFlightBytes > 0 && this.opts.nagle && !flush) return null;
    // A large write becomes its own segment(s) without a copy; small writes are merged.
    let data = this.unsent.peekPiece(len, VIEW_AT_LEAST);
    len = data.length;
    // A Go receiver takes a segment that starts like SACK information for SACK; shorten it.
    if (looksLikeSack(data)) {
      len = 4;
      data = data.subarray(0, 4);
    }
    this.unsent.skip(len);
    // `unsent` holds our own copies of the application's bytes, so the segment can keep a view.
    const seg: Segment = { seq: this.sndNxt, data, sentAt: now, xmits: 1, sacked: false, lost: false };
    this.segs.push(seg);
    this.sndNxt = seqAdd(this.sndNxt, len);
    this.chargeFlight();
    this.counters.bytesSent += len;
    this.counters.segmentsSent++;
    this.timers.arm(Timer.Rto, now + this.rtt.rto);
    this.armProbe(now);
    return { seq: seg.seq, data: seg.data, retransmit: false };
  }

  /**
   * How long Nagle may hold a partial segment: until the ACK would normally arrive (one smoothed
   * RTT, at least 1 ms), never longer than nagleDelayMs. Waiting for the ACK itself stalls a
   * stream of small messages for the peer's whole delayed-ACK time (40 ms) on every segment.
   */
  get nagleHoldMs(): Millis {
    const srtt = this.rtt.srtt;
    return srtt > 0 ? Math.min(this.opts.nagleDelayMs, Math.max(1, srtt)) : this.opts.nagleDelayMs;
  }

  /** True when a partial segment is being held back by Nagle. */
  get nagleHolding(): boolean {
    return this.opts.nagle && this.unsent.length > 0 && this.unsent.length < this.opts.mss && this.inFlightBytes > 0;
  }

  /** Retransmission timer expiry. Returns false when the connection should give up. */
  onRtoTimeout(now: Millis): boolean {
    this.timers.clear(Timer.Rto);
    this.timers.clear(Timer.Probe);
    if (this.inFlightBytes === 0) return true;
    this.counters.timeouts++;
    if (this.peerWindowBytes === 0) {
      // Window probe: not congestion, and the peer answered recently enough to be alive.
      this.markLost(this.segs.firstUnsacked(), false);
    } else if (this.sackedBytes >= this.inFlightBytes) {
      // The peer has everything in flight (SACKed) but acknowledges none of it: a receiver holding
      // data beyond its buffer for a sender it takes for one that ignores a zero window. Not
      // congestion either: the first segment goes again as a probe, which the peer answers.
      const head = this.segs.first;
      if (head?.sacked) {
        head.sacked = false;
        this.sackedBytes -= head.data.length;
      }
      this.markLost(head, false);
    } else {
      if (++this.consecutiveTimeouts > this.opts.maxRetransmits) return false;
      const newEpisode = !(this.inRecovery && this.timeoutRecovery);
      this.cc.onTimeout(this.pipe, newEpisode);
      for (let i = this.segs.start; i < this.segs.end; i++) this.markLost(this.segs.at(i), false);
      this.inRecovery = true;
      this.timeoutRecovery = true;
      this.recoveryPoint = this.sndNxt;
    }
    this.rtt.backOff();
    this.timers.set(Timer.Rto, now + this.rtt.rto);
    return true;
  }

  onReorderTimeout(now: Millis): void {
    this.timers.clear(Timer.Reorder);
    this.detectLosses(now);
  }

  /**
   * Tail loss probe (RFC 8985 §7): the last segments of a burst were sent and nothing answered
   * within two round trips. When they were lost there is nothing after them to reveal it, so only
   * the RTO (200 ms at least) would; the last segment goes again instead, and its ACK (with SACK, or
   * a duplicate ACK) starts a fast recovery. Not a congestion signal by itself.
   */
  onProbeTimeout(): void {
    this.timers.clear(Timer.Probe);
    if (this.inFlightBytes === 0 || this.inRecovery || this.probed || this.lostBytes > 0 || this.peerWindowBytes === 0)
      return;
    const last = this.segs.lastUnsacked();
    if (!last) return;
    this.probed = true;
    this.counters.tailProbes++;
    this.markLost(last, false);
  }

  /**
   * (Re)starts the probe timer once everything written is out (a tail: mid-stream, later segments
   * reveal a loss, and a receiver that is merely slow to ACK must not set off a recovery) and no
   * loss is being recovered; never past the RTO.
   */
  private armProbe(now: Millis): void {
    if (this.inFlightBytes === 0 || this.unsent.length > 0 || this.inRecovery || this.probed || !this.rtt.sampled) {
      this.timers.clear(Timer.Probe);
      return;
    }
    const oneSegment = this.segs.size === 1;
    const at = now + Math.max(2 * this.rtt.srtt, PROBE_MIN_MS) + (oneSegment ? this.opts.delayedAckMs : 0);
    const rto = this.timers.get(Timer.Rto);
    if (rto !== undefined && at >= rto) this.timers.clear(Timer.Probe);
    else this.timers.set(Timer.Probe, at);
  }

  /** Arms the RTO after a window probe or similar send outside nextSegment. */
  ensureRto(now: Millis): void {
    if (this.inFlightBytes > 0) this.timers.arm(Timer.Rto, now + this.rtt.rto);
  }

  /** Forces out one byte while the peer's window is closed (zero-window probe). */
  probe(now: Millis): OutSegment | null {
    if (this.unsent.length === 0 || this.inFlightBytes > 0) return null;
    const data = Buffer.from(this.unsent.shift(1));
    const seg: Segment = { seq: this.sndNxt, data, sentAt: now, xmits: 1, sacked: false, lost: false };
    this.segs.push(seg);
    this.sndNxt = seqAdd(this.sndNxt, 1);
    this.chargeFlight();
    this.counters.bytesSent += 1;
    this.counters.segmentsSent++;
    this.ensureRto(now);
    return { seq: seg.seq, data, retransmit: false };
  }

  /** Brings this connection's share of the peer's flight up to date with its bytes in flight. */
  private chargeFlight(): void {
    if (!this.flight || this.released) return;
    const delta = this.inFlightBytes - this.charged;
    this.charged += delta;
    this.flight.budget.bytes += delta;
  }

  /** The first segment went out again outside nextSegment (with a repeated SYN): no RTT sample from it. */
  resendFirst(now: Millis): void {
    const s = this.segs.first;
    if (!s) return;
    s.xmits++;
    s.sentAt = now;
    this.counters.retransmits++;
  }

  /** Everything in flight is to be sent again by the next nextSegment calls (the peer did not take it). */
  resendAll(): void {
    for (let i = this.segs.start; i < this.segs.end; i++) this.markLost(this.segs.at(i), false);
  }

  private retransmit(seg: Segment, now: Millis): OutSegment {
    seg.lost = false;
    this.lostBytes -= seg.data.length;
    seg.xmits++;
    seg.sentAt = now;
    this.counters.retransmits++;
    this.counters.segmentsSent++;
    this.timers.arm(Timer.Rto, now + this.rtt.rto);
    return { seq: seg.seq, data: seg.data, retransmit: true };
  }

  private ackUpTo(ack: number, now: Millis): number {
    let acked = 0;
    let sampleFrom: Segment | undefined;
    for (let s = this.segs.first; s !== undefined; s = this.segs.first) {
      const end = seqAdd(s.seq, s.data.length);
      if (seqLe(end, ack)) {
        this.segs.shift();
        acked += s.data.length;
        if (s.sacked) this.sackedBytes -= s.data.length;
        else this.onDelivered(s, now);
        if (s.lost) this.lostBytes -= s.data.length;
        if (s.xmits === 1 && !s.sacked && (!sampleFrom || s.sentAt > sampleFrom.sentAt)) sampleFrom = s;
        continue;
      }
      if (seqGt(ack, s.seq)) {
        const cut = seqDiff(ack, s.seq);
        acked += cut;
        if (s.sacked) this.sackedBytes -= cut;
        if (s.lost) this.lostBytes -= cut;
        s.data = s.data.subarray(cut);
        s.seq = ack;
      }
      break;
    }
    this.sndUna = ack;
    this.unsent.acknowledge(acked);
    if (sampleFrom) this.rtt.sample(now - sampleFrom.sentAt);
    return acked;
  }

  private applySack(blocks: readonly SackBlock[], now: Millis): boolean {
    let newly = false;
    let sampleFrom: Segment | undefined;
    for (const b of blocks) {
      if (!seqLt(b.left, b.right) || seqLe(b.right, this.sndUna) || seqGt(b.right, this.sndNxt)) continue;
      for (let i = this.segs.indexOf(b.left); i < this.segs.end; i++) {
        const s = this.segs.at(i);
        if (seqGe(s.seq, b.right)) break;
        if (s.sacked || seqLt(s.seq, b.left) || seqGt(seqAdd(s.seq, s.data.length), b.right)) continue;
        s.sacked = true;
        this.sackedBytes += s.data.length;
        if (s.lost) {
          s.lost = false;
          this.lostBytes -= s.data.length;
        }
        this.onDelivered(s, now);
        if (s.xmits === 1 && (!sampleFrom || s.sentAt > sampleFrom.sentAt)) sampleFrom = s;
        newly = true;
      }
    }
    if (sampleFrom) this.rtt.sample(now - sampleFrom.sentAt);
    return newly;
  }

  private onDelivered(s: Segment, now: Millis): void {
    const end = seqAdd(s.seq, s.data.length);
    if (s.xmits > 1 && this.rtt.sampled && now - s.sentAt < this.rtt.minRtt * 0.75) {
      // The original transmission got through: the retransmission was spurious (reordering).
      this.counters.spuriousRetransmits++;
      if (this.inRecovery && !this.timeoutRecovery) {
        this.cc.undo();
        this.reorderWindowScale = Math.min(this.reorderWindowScale * 2, 64);
      }
      return;
    }
    if (s.sentAt > this.rackSentAt || (s.sentAt === this.rackSentAt && seqGt(end, this.rackEndSeq))) {
      this.rackSentAt = s.sentAt;
      this.rackEndSeq = end;
      this.rackRtt = now - s.sentAt;
    }
  }

  private reorderWindow(): Millis {
    if (!this.rtt.sampled) return 1;
    return Math.min((this.rtt.minRtt / 4) * this.reorderWindowScale, this.rtt.srtt);
  }

  /** RACK: a segment sent before one that was delivered is lost once it is overdue by the reorder window. */
  private detectLosses(now: Millis): void {
    const reo = this.reorderWindow();
    let next: Millis | undefined;
    let found = false;
    for (let i = this.segs.start; i < this.segs.end; i++) {
      const s = this.segs.at(i);
      if (!seqLt(s.seq, this.rackEndSeq)) break;
      if (s.sacked || s.lost || s.sentAt > this.rackSentAt) continue;
      const overdue = s.sentAt + this.rackRtt + reo;
      if (overdue <= now) {
        this.markLost(s, true);
        found = true;
      } else if (next === undefined || overdue < next) next = overdue;
    }
    if (next === undefined) this.timers.clear(Timer.Reorder);
    else this.timers.set(Timer.Reorder, next);
    if (found && !this.inRecovery) {
      this.timers.clear(Timer.Probe);
      this.inRecovery = true;
      this.timeoutRecovery = false;
      this.recoveryPoint = this.sndNxt;
      this.cc.onLossEpisode(this.pipe);
    }
  }

  private markLost(s: Segment | undefined, fast: boolean): void {
    if (!s || s.lost || s.sacked) return;
    s.lost = true;
    this.lostBytes += s.data.length;
    if (fast) this.counters.fastRetransmits++;
  }

  private exitRecovery(): void {
    this.inRecovery = false;
    this.timeoutRecovery = false;
    this.cc.forgetUndo();
  }
}
