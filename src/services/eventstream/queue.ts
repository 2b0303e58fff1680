/** Limits of one subscriber's queue of events waiting to be written to its connection. */
export interface QueueLimits {
  readonly maxBytes: number;
  readonly maxCount: number;
}

export const DEFAULT_QUEUE_LIMITS: QueueLimits = { maxBytes: 1024 * 1024, maxCount: 1024 };

/**
 * A FIFO bounded by item count and total bytes. `push` refuses (and counts) an item that does not
 * fit; one item larger than `maxBytes` is still taken when the queue is empty, so a subscriber
 * that keeps up can receive events up to the protocol maximum.
 */
export class BoundedQueue<T> {
  private items: T[] = [];
  private sizes: number[] = [];
  private head = 0;
  private total = 0;
  private droppedCount = 0;

  constructor(readonly limits: QueueLimits = DEFAULT_QUEUE_LIMITS) {}

  get length(): number {
    return this.items.length - this.head;
  }

  get bytes(): number {
    return this.total;
  }

  /** Items refused since the queue was made. */
  get dropped(): number {
    return this.droppedCount;
  }

  fits(size: number): boolean {
    if (this.length === 0) return true;
    return this.length < this.limits.maxCount && this.total + size <= this.limits.maxBytes;
  }

  /** False (and the drop counted) when the item does not fit. */
  push(item: T, size: number): boolean {
    if (!this.fits(size)) {
      this.droppedCount++;
      return false;
    }
    this.force(item, size);
    return true;
  }

  /** Adds an item regardless of the limits (small control items only). */
  force(item: T, size: number): void {
    this.items.push(item);
    this.sizes.push(size);
    this.total += size;
  }

  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head] as T;
    this.total -= this.sizes[this.head] as number;
    this.head++;
    if (this.head === this.items.length) this.clear();
    else if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.sizes = this.sizes.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  clear(): void {
    this.items = [];
    this.sizes = [];
    this.head = 0;
    this.total = 0;
  }
}
