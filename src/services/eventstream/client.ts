import type { Duplex } from 'node:stream';
import type { PilotConn } from '../../pilot-net.js';
import { asBuffer } from '../../protocol/bytes.js';
import { encodeEvent, frameLengthAt } from '../../protocol/eventstream.js';
import { BoundedQueue, type QueueLimits } from './queue.js';
import { DROPPED_TOPIC, ERROR_TOPIC, topicMatches } from '../../protocol/event-topics.js';

/** How long a refused connection may take to read its last event and close before it is destroyed. */
const REFUSE_LINGER_MS = 5000;

/** Queued small frames are joined into writes of up to this size. */
const WRITE_BATCH = 64 * 1024;
/** Items this large are written alone. */
const JOIN_BELOW = 4096;

/** A subscriber that wrote nothing for this long is not waited for: it loses events instead. */
export const HOLD_PROGRESS_MS = 100;
/**
 * A subscriber holding publishers back whose writes made no progress for this long counts as
 * lagging (long enough for a reader on a busy machine to be scheduled again).
 */
export const HOLD_MAX_MS = 1000;

/**
 * One connection to the broker: its subscriptions and the bounded queue of events waiting to be
 * written to it. Writing never blocks the broker: events queue here while the connection is
 * congested, and are dropped (and counted) for this connection only when the queue is full.
 *
 * Backpressure without letting one subscriber stall the rest: when the queue of a subscriber that
 * is still being written to (a write completed within HOLD_PROGRESS_MS) passes half its limits,
 * the broker stops reading from the publishers feeding it until the queue is down to a quarter,
 * so a publisher faster than its subscribers is slowed down to their pace rather than losing
 * events. A hold lasts while the subscriber's writes keep completing; one whose writes made no
 * progress for HOLD_MAX_MS is lagging: it holds no one back and loses events alone until its queue
 * has emptied. A subscriber that stopped reading never holds anyone back.
 */
export class BrokerClient {
  readonly patterns = new Set<string>();
  private readonly queue: BoundedQueue<Uint8Array>;
  private waitingDrain = false;
  private noticePending = false;
  private closed = false;
  /** Set once the broker refused the connection: nothing more is read from it. */
  refused = false;
  /** Frames handed to the connection (events and notices). */
  written = 0;
  private pumpScheduled = false;
  /** Set by the broker while it fans out one event, so a connection gets it once. */
  lastSeq = 0;
  /** Subscribers holding this connection's reading back. */
  private heldBy = 0;
  /** Publishers this subscriber holds back. */
  private readonly holding = new Set<BrokerClient>();
  private holdTimer: NodeJS.Timeout | undefined;
  private lagging = false;
  private lastProgressAt = Number.NEGATIVE_INFINITY;

  constructor(
    readonly conn: Duplex & Pick<PilotConn, 'writeOwned'>,
    readonly remote: string,
    private readonly limits: QueueLimits,
  ) {
    this.queue = new BoundedQueue(limits);
  }

  get dropped(): number {
    return this.queue.dropped;
  }

  get queuedBytes(): number {
    return this.queue.bytes;
  }

  get queuedCount(): number {
    return this.queue.length;
  }

  /**
   * Whether this connection is told about its drops: only when one of its subscriptions matches
   * the notice topic (`_pilot.dropped` itself, `_pilot.*` or `*`), so a client that never asked
   * for other topics never sees one.
   */
  get wantsNotices(): boolean {
    for (const p of this.patterns) if (topicMatches(p, DROPPED_TOPIC)) return true;
    return false;
  }

  /**
   * Queues `count` encoded events (whole frames, one after the other); returns how many were
   * taken, the others being dropped for this connection. Events that do not all fit are queued one
   * by one, as far as they fit.
   */
  enqueue(frames: Uint8Array, count = 1): number {
    if (this.closed) return 0;
    if (!this.queue.fits(frames.length, count)) {
      if (count > 1) return this.enqueueEach(frames);
      this.queue.push(frames, frames.length);
      this.noticePending = this.wantsNotices;
      return 0;
    }
    this.queueNotice();
    this.queue.push(frames, frames.length, count);
    // A burst larger than a batch (or half the queue) is written at once, so that a reader that
    // keeps up never loses events to its own queue filling within one turn.
    if (this.queue.bytes >= WRITE_BATCH || this.queue.length * 2 >= this.limits.maxCount) this.pump();
    else this.schedulePump();
    return count;
  }

  private enqueueEach(frames: Uint8Array): number {
    let taken = 0;
    for (let at = 0; at < frames.length; ) {
      const end = at + frameLengthAt(frames, at);
      // A copy: a view would keep the whole run in memory for as long as this one event waits.
      taken += this.enqueue(Buffer.from(frames.subarray(at, end)));
      at = end;
    }
    return taken;
  }

  close(): void {
    this.closed = true;
    this.queue.clear();
    this.releaseHeld();
  }

  /** Holds `publisher` back when this subscriber's queue is over half full and it keeps reading. */
  holdIfBehind(publisher: BrokerClient): void {
    if (this.lagging || this.holding.has(publisher)) return;
    const { maxBytes, maxCount } = this.limits;
    if (this.queue.bytes * 2 < maxBytes && this.queue.length * 2 < maxCount) return;
    if (performance.now() - this.lastProgressAt > HOLD_PROGRESS_MS) return;
    this.holding.add(publisher);
    if (publisher.heldBy++ === 0) publisher.conn.pause();
    this.holdTimer ??= setTimeout(this.checkHold, HOLD_MAX_MS);
  }

  /** Ends a hold whose subscriber made no progress for HOLD_MAX_MS; otherwise looks again later. */
  private readonly checkHold = (): void => {
    this.holdTimer = undefined;
    if (this.holding.size === 0) return;
    const idle = performance.now() - this.lastProgressAt;
    if (idle < HOLD_MAX_MS) {
      this.holdTimer = setTimeout(this.checkHold, HOLD_MAX_MS - idle);
      return;
    }
    this.lagging = true;
    this.releaseHeld();
  };

  private releaseHeld(): void {
    if (this.holdTimer !== undefined) clearTimeout(this.holdTimer);
    this.holdTimer = undefined;
    for (const p of this.holding) {
      if (--p.heldBy === 0 && !p.refused && !p.conn.destroyed) p.conn.resume();
    }
    this.holding.clear();
  }

  /** A write left for the peer: this subscriber is being read. */
  private readonly onWritten = (err?: Error | null): void => {
    if (err) return;
    this.lastProgressAt = performance.now();
    if (this.queue.length === 0) this.lagging = false;
  };

  /** Publishers held back go on once the queue is down to a quarter of its limits. */
  private releaseIfCaughtUp(): void {
    if (this.holding.size === 0) return;
    const { maxBytes, maxCount } = this.limits;
    if (this.queue.bytes * 4 <= maxBytes && this.queue.length * 4 <= maxCount) this.releaseHeld();
  }

  /**
   * Ends the connection with one last event on ERROR_TOPIC saying why; queued events are
   * discarded and nothing more is read from it. Destroyed after REFUSE_LINGER_MS at the latest.
   */
  refuse(reason: string): void {
    this.refused = true;
    this.close();
    this.conn.pause();
    this.conn.end(encodeEvent({ topic: ERROR_TOPIC, payload: Buffer.from(JSON.stringify({ error: reason })) }));
    setTimeout(() => this.conn.destroy(), REFUSE_LINGER_MS).unref();
  }

  /** The notice goes where the gap is: before the first event queued after the drops. */
  private queueNotice(): void {
    if (!this.noticePending) return;
    this.noticePending = false;
    const notice = encodeEvent({ topic: DROPPED_TOPIC, payload: Buffer.from(`{"dropped":${this.queue.dropped}}`) });
    this.queue.force(notice, notice.length);
  }

  /**
   * The next frames to write. Small items (single events) are joined into one write of up to
   * WRITE_BATCH bytes; a large one (a run of events relayed as they came) is written as it is,
   * since copying it again for every subscriber would cost more than the write it saves.
   */
  private takeBatch(): Uint8Array | undefined {
    this.written += this.queue.peekCount();
    const first = this.queue.shift();
    if (first === undefined) return undefined;
    if (first.length >= JOIN_BELOW || !this.joinsNext(first.length)) return first;
    const parts = [first];
    let size = first.length;
    while (this.joinsNext(size)) {
      this.written += this.queue.peekCount();
      const next = this.queue.shift() as Uint8Array;
      parts.push(next);
      size += next.length;
    }
    return Buffer.concat(parts, size);
  }

  private joinsNext(size: number): boolean {
    const next = this.queue.peekSize();
    return next > 0 && next < JOIN_BELOW && size + next <= WRITE_BATCH;
  }

  /** Writes once per event-loop turn: the events published meanwhile go out as one batch. */
  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    if (this.waitingDrain || this.closed) return;
    for (;;) {
      if (this.queue.length === 0) this.queueNotice();
      const next = this.takeBatch();
      if (next === undefined) return;
      // One batch may go to many subscribers; none of them needs a copy of its own.
      const room = this.conn.writeOwned
        ? this.conn.writeOwned(asBuffer(next), this.onWritten)
        : this.conn.write(next, this.onWritten);
      this.releaseIfCaughtUp();
      if (!room) {
        this.waitingDrain = true;
        this.conn.once('drain', () => {
          this.waitingDrain = false;
          this.pump();
        });
        return;
      }
    }
  }
}
