import { KeyedRateLimiter } from '../rate-limit.js';

/**
 * Token buckets per source IP with a bounded number of IPs. When full, the least recently
 * active IP is forgotten (it gets a fresh bucket next time), which costs O(1) per datagram even
 * under a flood from many source addresses.
 */
export class IpRateLimiter extends KeyedRateLimiter<string> {
  constructor(ratePerSecond: number, burst: number, maxIps: number) {
    super(ratePerSecond, burst, maxIps, 'evict-oldest');
  }
}
