import type { Millis } from './types.js';

/** A token bucket driven by the caller's clock. */
export class TokenBucket {
  private tokens: number;
  private last: Millis | undefined;

  constructor(
    private readonly ratePerSecond: number,
    private readonly burst: number,
  ) {
    this.tokens = burst;
  }

  take(now: Millis): boolean {
    this.refill(now);
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** The share of the burst available now, 0 to 1. */
  level(now: Millis): number {
    this.refill(now);
    return this.tokens / this.burst;
  }

  /** True when the bucket is full again, i.e. it carries no state worth keeping. */
  idle(now: Millis): boolean {
    this.refill(now);
    return this.tokens >= this.burst;
  }

  private refill(now: Millis): void {
    if (this.last !== undefined && now > this.last) {
      this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.ratePerSecond);
    }
    if (this.last === undefined || now > this.last) this.last = now;
  }
}

/** Per-key token buckets with a bound on how many keys are tracked. */
export class KeyedRateLimiter<K> {
  private readonly buckets = new Map<K, TokenBucket>();

  constructor(
    private readonly ratePerSecond: number,
    private readonly burst: number,
    private readonly maxKeys: number,
  ) {}

  take(key: K, now: Millis): boolean {
    let bucket = this.buckets.get(key);
    if (!bucket) {
      if (this.buckets.size >= this.maxKeys) this.reap(now);
      if (this.buckets.size >= this.maxKeys) return false;
      bucket = new TokenBucket(this.ratePerSecond, this.burst);
      this.buckets.set(key, bucket);
    }
    return bucket.take(now);
  }

  /** The share of its burst a key has left (1 for a key not tracked). */
  level(key: K, now: Millis): number {
    return this.buckets.get(key)?.level(now) ?? 1;
  }

  /** Forgets keys whose buckets have refilled completely. */
  reap(now: Millis): void {
    for (const [key, bucket] of this.buckets) if (bucket.idle(now)) this.buckets.delete(key);
  }

  get size(): number {
    return this.buckets.size;
  }
}
