/** Limits of one subscriber's queue of events waiting to be written to its connection. */
export interface QueueLimits {
  readonly maxBytes: number;
  readonly maxCount: number;
}

/**
 * Bytes bound the memory; the count is high enough that a subscriber of small events that keeps
 * up has room for several input chunks while publishers are being held back.
 */
export const DEFAULT_QUEUE_LIMITS: QueueLimits = { maxBytes: 1024 * 1024, maxCount: 8192 };

/**
 * A FIFO bounded by event count and total bytes. An item may stand for several events (`count`,
 * default 1): the limits and the drop counter are in events. `push` refuses (and counts) an item
 * that does not fit; one single event larger than `maxBytes` is still taken when the queue is
 * empty, so a subscriber that keeps up can receive events up to the protocol maximum.
 */
export class BoundedQueue<T> {
  private items: T[] = [];
  private sizes: number[] = [];
  private counts: number[] = [];
  private head = 0;
  private total = 0;
  private events = 0;
  private droppedCount = 0;

  constructor(readonly limits: QueueLimits = DEFAULT_QUEUE_LIMITS) {}

  /** Events queued. */
  get length(): number {
    return this.events;
  }

  get bytes(): number {
    return this.total;
  }

  /** Events refused since the queue was made. */
  get dropped(): number {
    return this.droppedCount;
  }

  fits(size: number, count = 1): boolean {
    if (this.events === 0 && count === 1) return true;
    return this.events + count <= this.limits.maxCount && this.total + size <= this.limits.maxBytes;
  }

  /** False (and the drop counted) when the item does not fit. */
  push(item: T, size: number, count = 1): boolean {
    if (!this.fits(size, count)) {
      this.droppedCount += count;
      return false;
    }
    this.force(item, size, count);
    return true;
  }

  /** Adds an item regardless of the limits (small control items only). */
  force(item: T, size: number, count = 1): void {
    this.items.push(item);
    this.sizes.push(size);
    this.counts.push(count);
    this.total += size;
    this.events += count;
  }

  /** Events in the item `shift()` would return next (0 when empty). */
  peekCount(): number {
    return this.head < this.items.length ? (this.counts[this.head] as number) : 0;
  }

  /** Size of the item `shift()` would return next (0 when empty). */
  peekSize(): number {
    return this.head < this.items.length ? (this.sizes[this.head] as number) : 0;
  }

  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head] as T;
    this.total -= this.sizes[this.head] as number;
    this.events -= this.counts[this.head] as number;
    this.head++;
    if (this.head === this.items.length) this.clear();
    else if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.sizes = this.sizes.slice(this.head);
      this.counts = this.counts.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  clear(): void {
    // Emptied in place: a queue that keeps up empties on every write.
    this.items.length = 0;
    this.sizes.length = 0;
    this.counts.length = 0;
    this.head = 0;
    this.total = 0;
    this.events = 0;
  }
}
