/**
 * Requests the registry has handled since it started, in total and by message type. Types that
 * have no handler are counted under `unknown`, so a client cannot grow the table.
 */
export class RequestCounter {
  #total = 0;
  readonly #byType = new Map<string, number>();

  count(type: string): void {
    this.#total++;
    this.#byType.set(type, (this.#byType.get(type) ?? 0) + 1);
  }

  get total(): number {
    return this.#total;
  }

  /** A copy, sorted by type. */
  byType(): Map<string, number> {
    return new Map([...this.#byType].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }
}

export const UNKNOWN_REQUEST_TYPE = 'unknown';
