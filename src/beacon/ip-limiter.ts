import { TokenBucket } from '../transport/rate-limit.js';

/**
 * Token buckets per source IP with a bounded number of IPs. When full, the least recently
 * active IP is forgotten (it gets a fresh bucket next time), which costs O(1) per datagram even
 * under a flood from many source addresses.
 */
export class IpRateLimiter {
  private readonly buckets = new Map<string, TokenBucket>();

  constructor(
    private readonly ratePerSecond: number,
    private readonly burst: number,
    private readonly maxIps: number,
  ) {}

  take(ip: string, now: number): boolean {
    let bucket = this.buckets.get(ip);
    if (bucket) {
      this.buckets.delete(ip);
    } else {
      if (this.buckets.size >= this.maxIps) {
        const oldest = this.buckets.keys().next();
        if (!oldest.done) this.buckets.delete(oldest.value);
      }
      bucket = new TokenBucket(this.ratePerSecond, this.burst);
    }
    this.buckets.set(ip, bucket);
    return bucket.take(now);
  }

  /** Forgets IPs whose buckets have refilled completely. */
  reap(now: number): void {
    for (const [ip, bucket] of this.buckets) if (bucket.idle(now)) this.buckets.delete(ip);
  }

  get size(): number {
    return this.buckets.size;
  }
}
