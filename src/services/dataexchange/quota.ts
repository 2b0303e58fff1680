import { KeyedRateLimiter } from '../../rate-limit.js';

/** Per-sender limits of the data-exchange service: bytes stored and messages per second. Pure. */

export const DEFAULT_QUOTA_BYTES = 256 * 1024 * 1024;
export const DEFAULT_RATE_PER_SECOND = 100;
const MAX_TRACKED_SENDERS = 4096;

/** Bytes a store in progress holds against its sender's quota until it commits or releases them. */
export interface QuotaReservation {
  readonly sender: string;
  readonly bytes: number;
}

/**
 * Bytes each sender has stored in inbox/ and received/, plus the bytes reserved by stores still
 * in progress, so that concurrent stores together never exceed the limit.
 */
export class SenderQuota {
  private usage = new Map<string, number>();
  private readonly reserved = new Map<string, number>();
  private readonly outstanding = new Set<QuotaReservation>();
  private settledWaiters: (() => void)[] = [];

  constructor(readonly limitBytes: number) {}

  /** Bytes stored plus bytes reserved. */
  used(sender: string): number {
    return (this.usage.get(sender) ?? 0) + (this.reserved.get(sender) ?? 0);
  }

  /** True when storing `bytes` more for `sender` stays within the limit. */
  allows(sender: string, bytes: number): boolean {
    return this.used(sender) + bytes <= this.limitBytes;
  }

  add(sender: string, bytes: number): void {
    this.usage.set(sender, (this.usage.get(sender) ?? 0) + bytes);
  }

  /** Holds `bytes` for a store about to start; undefined when that would exceed the limit. */
  reserve(sender: string, bytes: number): QuotaReservation | undefined {
    if (!this.allows(sender, bytes)) return undefined;
    const reservation: QuotaReservation = { sender, bytes };
    this.reserved.set(sender, (this.reserved.get(sender) ?? 0) + bytes);
    this.outstanding.add(reservation);
    return reservation;
  }

  /** The store succeeded and wrote `storedBytes` (normally the reserved amount). */
  commit(reservation: QuotaReservation, storedBytes = reservation.bytes): void {
    if (this.settle(reservation)) this.add(reservation.sender, storedBytes);
  }

  /** The store failed: the reserved bytes are free again. */
  release(reservation: QuotaReservation): void {
    this.settle(reservation);
  }

  /** Resolves once no reservation is outstanding (e.g. before recounting the disk). */
  whenSettled(): Promise<void> {
    if (this.outstanding.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.settledWaiters.push(resolve));
  }

  /** Replaces the accounting of stored bytes with a fresh count (after a scan of the disk). */
  reset(usage: ReadonlyMap<string, number>): void {
    this.usage = new Map(usage);
  }

  /** Bytes stored (reservations excluded). */
  get totalBytes(): number {
    let sum = 0;
    for (const v of this.usage.values()) sum += v;
    return sum;
  }

  private settle(reservation: QuotaReservation): boolean {
    if (!this.outstanding.delete(reservation)) return false;
    const left = (this.reserved.get(reservation.sender) ?? 0) - reservation.bytes;
    if (left > 0) this.reserved.set(reservation.sender, left);
    else this.reserved.delete(reservation.sender);
    if (this.outstanding.size === 0) {
      const waiters = this.settledWaiters;
      this.settledWaiters = [];
      for (const resolve of waiters) resolve();
    }
    return true;
  }
}

/** Token bucket per sender: `ratePerSecond` refill, bursts up to twice that. */
export function senderRateLimiter(ratePerSecond: number): KeyedRateLimiter<string> {
  return new KeyedRateLimiter<string>(ratePerSecond, Math.max(1, ratePerSecond * 2), MAX_TRACKED_SENDERS, 'clear');
}
