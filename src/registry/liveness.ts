/** A node not seen for this long is offline: not resolvable, not listed (PROTOCOL.md §5.7). */
export const STALE_AFTER_MS = 180_000;

/**
 * Volatile per-node times: `last_seen` (register, heartbeat) and the last request the node proved
 * with its key. Kept in memory on purpose; on start every stored node gets a fresh grace period.
 */
export class Liveness {
  readonly #seen = new Map<number, number>();
  readonly #proven = new Map<number, number>();

  touch(id: number, now: number): void {
    this.#seen.set(id, now);
  }

  proven(id: number, now: number): void {
    this.#proven.set(id, now);
  }

  lastSeen(id: number): number | undefined {
    return this.#seen.get(id);
  }

  isOnline(id: number, now: number): boolean {
    const seen = this.#seen.get(id);
    return seen !== undefined && now - seen <= STALE_AFTER_MS;
  }

  /** Nodes seen within the stale window (a pass over the map: no store read). */
  onlineCount(now: number): number {
    let count = 0;
    for (const seen of this.#seen.values()) if (now - seen <= STALE_AFTER_MS) count++;
    return count;
  }

  /** True when the key holder proved itself within the stale window. */
  recentlyProven(id: number, now: number): boolean {
    const at = this.#proven.get(id);
    return at !== undefined && now - at <= STALE_AFTER_MS;
  }

  forget(id: number): void {
    this.#seen.delete(id);
    this.#proven.delete(id);
  }
}
