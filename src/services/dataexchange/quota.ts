/** Per-sender limits of the data-exchange service: bytes stored and messages per second. Pure. */

export const DEFAULT_QUOTA_BYTES = 256 * 1024 * 1024;
export const DEFAULT_RATE_PER_SECOND = 100;
const MAX_TRACKED_SENDERS = 4096;

/** Bytes each sender has stored in inbox/ and received/. */
export class SenderQuota {
  private usage = new Map<string, number>();

  constructor(readonly limitBytes: number) {}

  used(sender: string): number {
    return this.usage.get(sender) ?? 0;
  }

  /** True when storing `bytes` more for `sender` stays within the limit. */
  allows(sender: string, bytes: number): boolean {
    return this.used(sender) + bytes <= this.limitBytes;
  }

  add(sender: string, bytes: number): void {
    this.usage.set(sender, this.used(sender) + bytes);
  }

  /** Replaces the accounting with a fresh count (after a scan of the disk). */
  reset(usage: ReadonlyMap<string, number>): void {
    this.usage = new Map(usage);
  }

  get totalBytes(): number {
    let sum = 0;
    for (const v of this.usage.values()) sum += v;
    return sum;
  }
}

/** Token bucket per sender: `ratePerSecond` refill, bursts up to twice that. */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly burst: number;

  constructor(
    readonly ratePerSecond: number,
    private readonly now: () => number,
  ) {
    this.burst = Math.max(1, ratePerSecond * 2);
  }

  /** Takes one token for `sender`; false when the sender is over its rate. */
  take(sender: string): boolean {
    const now = this.now();
    let bucket = this.buckets.get(sender);
    if (bucket === undefined) {
      if (this.buckets.size >= MAX_TRACKED_SENDERS) this.evictFull(now);
      bucket = { tokens: this.burst, at: now };
      this.buckets.set(sender, bucket);
    }
    bucket.tokens = Math.min(this.burst, bucket.tokens + ((now - bucket.at) / 1000) * this.ratePerSecond);
    bucket.at = now;
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  /** Forgets senders whose bucket has refilled: they are indistinguishable from new ones. */
  private evictFull(now: number): void {
    for (const [sender, b] of this.buckets) {
      if (b.tokens + ((now - b.at) / 1000) * this.ratePerSecond >= this.burst) this.buckets.delete(sender);
    }
    if (this.buckets.size >= MAX_TRACKED_SENDERS) this.buckets.clear();
  }
}
