import { BASE_SEGMENT } from '../protocol/caps.js';
import type { SackBlock } from '../protocol/sack.js';
import { MAX_SACK_BLOCKS } from '../protocol/sack.js';
import { ByteQueue, VIEW_AT_LEAST } from './byte-queue.js';
import { seqAdd, seqDiff, seqGe, seqGt, seqLe, seqLt } from './seq.js';

interface OooSegment {
  seq: number;
  data: Buffer;
}

export type DataVerdict =
  /** Extended the in-order stream (possibly draining buffered successors). */
  | 'in_order'
  /** Held out of order. */
  | 'out_of_order'
  /** Nothing new: already received, or entirely outside the window. */
  | 'duplicate'
  | 'beyond_window';

/**
 * With segments larger than the protocol's base (a loopback path between pilot-ts nodes), the
 * receive buffer holds at least this many of them, up to LARGE_RECV_BUFFER_MAX: the default 2 MiB
 * would hold 34 segments of 60 KiB, and the window, not the CPU, would pace a bulk transfer.
 */
const RECV_BUFFER_SEGMENTS = 128;
const LARGE_RECV_BUFFER_MAX = 8 * 1024 * 1024;

/** The receive buffer of a connection whose segments are `mss` bytes, given the configured size. */
export function receiveBufferBytes(mss: number, configured: number): number {
  if (mss <= BASE_SEGMENT) return configured;
  return Math.max(configured, Math.min(LARGE_RECV_BUFFER_MAX, RECV_BUFFER_SEGMENTS * mss));
}

/**
 * Receive side of a stream: reassembly, the buffer the application reads from, the advertised
 * window and SACK blocks. Out-of-order data is kept for everything inside the advertised window,
 * so the receiver never discards what a window-respecting sender put in flight.
 *
 * With `slackBytes` > 0 (a peer that reads a zero window as "no limit", as the reference does)
 * the receiver takes up to that many bytes beyond its capacity, whole segments only, and while
 * the buffer is over capacity the cumulative ACK stays where it was: the data that arrived since
 * is held unacknowledged and reported in a SACK block instead. Such a sender counts held data as
 * in flight, so it stops at the (never zero) window, and, the data being SACKed, it does not
 * retransmit it either.
 */
export class StreamReceiver {
  private readable = new ByteQueue();
  private ooo: OooSegment[] = [];
  private oooTotal = 0;
  private lastOooSeq: number | undefined;
  /** The cumulative ACK last handed out by ackNumber(). */
  private lastAck: number;
  /** Sequence at which the peer's FIN was placed, once seen. */
  finSeq: number | undefined;
  /** Bytes accepted beyond capacity, for a peer that ignores a zero window (0 = none). */
  slackBytes = 0;

  constructor(
    /** Next in-order sequence number expected. */
    public rcvNxt: number,
    private capacity: number,
  ) {
    this.lastAck = rcvNxt;
  }

  /** Raises the buffer to `bytes` (never lowers it: a window once offered is not taken back). */
  grow(bytes: number): void {
    if (bytes > this.capacity) this.capacity = bytes;
  }

  get readableBytes(): number {
    return this.readable.length;
  }

  get oooBytes(): number {
    return this.oooTotal;
  }

  get hasOutOfOrder(): boolean {
    return this.ooo.length > 0;
  }

  /** True once every byte before the peer's FIN has arrived. */
  get finReached(): boolean {
    return this.finSeq !== undefined && seqGe(this.rcvNxt, this.finSeq);
  }

  /** Free space in bytes, measured from rcvNxt. */
  get windowBytes(): number {
    return Math.max(0, this.capacity - this.readable.length);
  }

  /** In-order data beyond capacity (only possible with slack), and more may come before the FIN. */
  get overCapacity(): boolean {
    return this.slackBytes > 0 && this.readable.length > this.capacity && !this.finReached;
  }

  /** Data is received but held unacknowledged (see the class comment). */
  get holding(): boolean {
    return this.overCapacity && this.lastAck !== this.rcvNxt;
  }

  /** The cumulative ACK to put in the next packet: rcvNxt, unless data is being held. */
  ackNumber(): number {
    if (!this.overCapacity) this.lastAck = this.rcvNxt;
    return this.lastAck;
  }

  /** Takes ownership of `payload` (it is kept, not copied): the caller must not change it afterwards. */
  onData(seq: number, payload: Uint8Array): DataVerdict {
    let start = seq;
    let data = Buffer.isBuffer(payload) ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
    const end = seqAdd(start, data.length);
    if (seqLe(end, this.rcvNxt)) return 'duplicate';
    if (seqLt(start, this.rcvNxt)) {
      data = data.subarray(seqDiff(this.rcvNxt, start));
      start = this.rcvNxt;
    }
    const room =
      this.slackBytes > 0 ? Math.max(0, this.capacity + this.slackBytes - this.readable.length) : this.windowBytes;
    const windowEnd = seqAdd(this.rcvNxt, room);
    if (seqGe(start, windowEnd)) return 'beyond_window';
    if (seqGt(seqAdd(start, data.length), windowEnd)) {
      // Cut to the window; but with slack a segment is taken whole or not at all: a partly taken
      // one could not be covered by the SACK block of held data, and would be retransmitted.
      if (this.slackBytes > 0) return 'beyond_window';
      data = data.subarray(0, seqDiff(windowEnd, start));
    }
    if (data.length === 0) return 'beyond_window';

    if (start === this.rcvNxt) {
      this.appendInOrder(data);
      this.drainOoo();
      return 'in_order';
    }
    return this.insertOoo(start, data) ? 'out_of_order' : 'duplicate';
  }

  /** Removes up to maxBytes of in-order data for the application. */
  read(maxBytes: number): Buffer | null {
    if (this.readable.length === 0) return null;
    return this.readable.shiftPiece(maxBytes, VIEW_AT_LEAST);
  }

  /**
   * Up to four SACK blocks: the block holding the most recent arrival first (RFC 2018), then the
   * others from the lowest sequence up.
   */
  sackBlocks(): SackBlock[] {
    const held = this.holding ? [{ left: this.lastAck, right: this.rcvNxt }] : [];
    if (this.ooo.length === 0) return held;
    const blocks: SackBlock[] = [];
    let cur: { left: number; right: number } | undefined;
    for (const s of this.ooo) {
      const right = seqAdd(s.seq, s.data.length);
      if (cur && cur.right === s.seq) cur.right = right;
      else {
        if (cur) blocks.push(cur);
        cur = { left: s.seq, right };
      }
    }
    if (cur) blocks.push(cur);
    const recent = this.lastOooSeq;
    if (recent !== undefined) {
      const idx = blocks.findIndex((b) => seqGe(recent, b.left) && seqLt(recent, b.right));
      if (idx > 0) blocks.unshift(...blocks.splice(idx, 1));
    }
    // The held block goes first: without it the sender would retransmit what is held.
    return [...held, ...blocks].slice(0, MAX_SACK_BLOCKS);
  }

  private appendInOrder(data: Buffer): void {
    this.readable.push(data);
    this.rcvNxt = seqAdd(this.rcvNxt, data.length);
  }

  private drainOoo(): void {
    while (this.ooo.length > 0) {
      const first = this.ooo[0] as OooSegment;
      if (seqGt(first.seq, this.rcvNxt)) return;
      this.ooo.shift();
      this.oooTotal -= first.data.length;
      const end = seqAdd(first.seq, first.data.length);
      if (seqGt(end, this.rcvNxt)) this.appendInOrder(first.data.subarray(seqDiff(this.rcvNxt, first.seq)));
    }
  }

  /** Inserts keeping the list sorted and non-overlapping; existing bytes win. Returns false if nothing new. */
  private insertOoo(seq: number, data: Buffer): boolean {
    let start = seq;
    let bytes = data;
    let lo = 0;
    let hi = this.ooo.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (seqLt((this.ooo[mid] as OooSegment).seq, start)) lo = mid + 1;
      else hi = mid;
    }
    let idx = lo;
    const prev = this.ooo[idx - 1];
    if (prev) {
      const prevEnd = seqAdd(prev.seq, prev.data.length);
      if (seqGe(prevEnd, seqAdd(start, bytes.length))) return false;
      if (seqGt(prevEnd, start)) {
        bytes = bytes.subarray(seqDiff(prevEnd, start));
        start = prevEnd;
      }
    }
    let inserted = false;
    while (bytes.length > 0) {
      const next = this.ooo[idx];
      const end = seqAdd(start, bytes.length);
      if (!next || seqGe(next.seq, end)) {
        this.ooo.splice(idx, 0, { seq: start, data: bytes });
        this.oooTotal += bytes.length;
        inserted = true;
        break;
      }
      if (seqLt(start, next.seq)) {
        const part = bytes.subarray(0, seqDiff(next.seq, start));
        this.ooo.splice(idx, 0, { seq: start, data: part });
        this.oooTotal += part.length;
        inserted = true;
        idx++;
      }
      const nextEnd = seqAdd(next.seq, next.data.length);
      idx++;
      if (seqGe(nextEnd, end)) break;
      bytes = bytes.subarray(seqDiff(nextEnd, start));
      start = nextEnd;
    }
    if (inserted) this.lastOooSeq = seq;
    return inserted;
  }
}
