import type { Duplex } from 'node:stream';
import { encodeEvent } from '../../protocol/eventstream.js';
import { BoundedQueue, type QueueLimits } from './queue.js';
import { DROPPED_TOPIC, ERROR_TOPIC, topicMatches } from '../../protocol/event-topics.js';

/** How long a refused connection may take to read its last event and close before it is destroyed. */
const REFUSE_LINGER_MS = 5000;

/** Queued frames are joined into writes of about this size (0 writes one frame per write). */
const WRITE_BATCH: number = 64 * 1024;

/**
 * One connection to the broker: its subscriptions and the bounded queue of events waiting to be
 * written to it. Writing never blocks the broker: events queue here while the connection is
 * congested, and are dropped (and counted) for this connection only when the queue is full.
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

  constructor(
    readonly conn: Duplex,
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

  /** Queues one encoded event; false when it was dropped for this connection. */
  enqueue(frame: Uint8Array): boolean {
    if (this.closed) return false;
    if (!this.queue.fits(frame.length)) {
      this.queue.push(frame, frame.length);
      this.noticePending = this.wantsNotices;
      return false;
    }
    this.queueNotice();
    this.queue.push(frame, frame.length);
    // A burst larger than a batch (or half the queue) is written at once, so that a reader that
    // keeps up never loses events to its own queue filling within one turn.
    if (this.queue.bytes >= WRITE_BATCH || this.queue.length * 2 >= this.limits.maxCount) this.pump();
    else this.schedulePump();
    return true;
  }

  close(): void {
    this.closed = true;
    this.queue.clear();
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

  /** The next frames to write, small ones joined into one write of up to WRITE_BATCH bytes. */
  private takeBatch(): Uint8Array | undefined {
    const first = this.queue.shift();
    if (first === undefined) return undefined;
    this.written++;
    if (WRITE_BATCH === 0 || this.queue.length === 0 || first.length >= WRITE_BATCH) return first;
    const parts = [first];
    let size = first.length;
    while (this.queue.length > 0 && size < WRITE_BATCH) {
      const next = this.queue.shift() as Uint8Array;
      parts.push(next);
      size += next.length;
      this.written++;
    }
    return Buffer.concat(parts, size);
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
      if (!this.conn.write(next)) {
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
