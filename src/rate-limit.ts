/**
 * Token buckets on the caller's clock (Unix or monotonic ms, passed to every call): one bucket, and
 * buckets per key with a bound on how many keys are tracked. No timers; a clock that goes back is
 * treated as standing still.
 */

/** A token bucket: `burst` tokens when new or idle, refilled at `ratePerSecond`. */
export class TokenBucket {
  #tokens: number;
  #last: number | undefined;

  constructor(
    readonly ratePerSecond: number,
    readonly burst: number,
  ) {
    this.#tokens = burst;
  }

  /** Takes one token; false when the bucket is empty. */
  take(now: number): boolean {
    this.#refill(now);
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  /** The share of the burst available now, 0 to 1. */
  level(now: number): number {
    this.#refill(now);
    return this.#tokens / this.burst;
  }

  /** True when the bucket is full again, i.e. it carries no state worth keeping. */
  idle(now: number): boolean {
    this.#refill(now);
    return this.#tokens >= this.burst;
  }

  #refill(now: number): void {
    if (this.#last !== undefined && now > this.#last) {
      this.#tokens = Math.min(this.burst, this.#tokens + ((now - this.#last) / 1000) * this.ratePerSecond);
    }
    if (this.#last === undefined || now > this.#last) this.#last = now;
  }
}

/**
 * What a new key meets when `maxKeys` keys are tracked:
 * - `refuse`: keys whose buckets have refilled are forgotten; if none has, the new key is refused.
 * - `evict-oldest`: the least recently used key is forgotten (O(1), for floods from many sources).
 * - `clear`: keys whose buckets have refilled are forgotten; if none has, all keys are.
 */
export type WhenFull = 'refuse' | 'evict-oldest' | 'clear';

/**
 * A token bucket per key, keys in order of last use. A forgotten key gets a full bucket when it
 * comes back, so forgetting a key whose bucket has refilled (`reap`) changes nothing it sees.
 */
export class KeyedRateLimiter<K> {
  readonly #buckets = new Map<K, TokenBucket>();

  constructor(
    readonly ratePerSecond: number,
    readonly burst: number,
    readonly maxKeys: number = Number.POSITIVE_INFINITY,
    readonly whenFull: WhenFull = 'refuse',
  ) {}

  /** Takes one token for `key`; false when its bucket is empty (or the key cannot be tracked). */
  take(key: K, now: number): boolean {
    let bucket = this.#buckets.get(key);
    if (bucket !== undefined) {
      this.#buckets.delete(key);
    } else {
      if (this.#buckets.size >= this.maxKeys && !this.#makeRoom(now)) return false;
      bucket = new TokenBucket(this.ratePerSecond, this.burst);
    }
    this.#buckets.set(key, bucket);
    return bucket.take(now);
  }

  /** The share of its burst a key has left (1 for a key not tracked). */
  level(key: K, now: number): number {
    return this.#buckets.get(key)?.level(now) ?? 1;
  }

  /** Forgets keys whose buckets have refilled completely. */
  reap(now: number): void {
    for (const [key, bucket] of this.#buckets) if (bucket.idle(now)) this.#buckets.delete(key);
  }

  get size(): number {
    return this.#buckets.size;
  }

  /** True when a new key may be added. */
  #makeRoom(now: number): boolean {
    if (this.whenFull === 'evict-oldest') {
      const oldest = this.#buckets.keys().next();
      if (!oldest.done) this.#buckets.delete(oldest.value);
      return true;
    }
    this.reap(now);
    if (this.#buckets.size < this.maxKeys) return true;
    if (this.whenFull === 'refuse') return false;
    this.#buckets.clear();
    return true;
  }
}
