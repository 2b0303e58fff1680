interface Bucket {
  tokens: number;
  updated: number;
}

/** Token buckets keyed by source IP; idle buckets are dropped by `prune`. */
export class RateLimiter {
  readonly #buckets = new Map<string, Bucket>();

  constructor(
    private readonly ratePerSecond: number,
    private readonly burst: number,
  ) {}

  /** Takes one token; false when the bucket is empty. */
  take(key: string, now: number): boolean {
    let bucket = this.#buckets.get(key);
    if (bucket === undefined) {
      bucket = { tokens: this.burst, updated: now };
      this.#buckets.set(key, bucket);
    }
    const elapsed = Math.max(0, now - bucket.updated) / 1000;
    bucket.tokens = Math.min(this.burst, bucket.tokens + elapsed * this.ratePerSecond);
    bucket.updated = now;
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  /** Drops buckets untouched for idleMs (they would be full again anyway). */
  prune(now: number, idleMs: number): void {
    for (const [key, bucket] of this.#buckets) if (now - bucket.updated > idleMs) this.#buckets.delete(key);
  }

  get size(): number {
    return this.#buckets.size;
  }
}
