/** At most one event per key every `intervalMs`; remembers at most `maxKeys` keys. */
export class IntervalLimiter<K> {
  readonly #last = new Map<K, number>();

  constructor(
    private readonly intervalMs: number,
    private readonly maxKeys: number,
  ) {}

  allow(key: K, now: number): boolean {
    const last = this.#last.get(key);
    if (last !== undefined && now - last < this.intervalMs) return false;
    this.#last.delete(key);
    if (this.#last.size >= this.maxKeys) {
      const oldest = this.#last.keys().next();
      if (!oldest.done) this.#last.delete(oldest.value);
    }
    this.#last.set(key, now);
    return true;
  }

  /** Milliseconds since the last allowed event for `key` (Infinity if none remembered). */
  since(key: K, now: number): number {
    const last = this.#last.get(key);
    return last === undefined ? Infinity : now - last;
  }

  forget(key: K): void {
    this.#last.delete(key);
  }

  clear(): void {
    this.#last.clear();
  }
}
