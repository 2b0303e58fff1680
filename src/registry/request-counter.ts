/**
 * Requests the registry has handled since it started, in total and by message type. Types that
 * have no handler are counted under `unknown`, so a client cannot grow the table.
 */
export class RequestCounter {
  #total = 0;
  #relayed = 0;
  readonly #byType = new Map<string, number>();

  count(type: string): void {
    this.#total++;
    this.#byType.set(type, (this.#byType.get(type) ?? 0) + 1);
  }

  /** A request of `type` was answered without an error. */
  succeeded(type: string): void {
    if (RELAY_TYPES.has(type)) this.#relayed++;
  }

  get total(): number {
    return this.#total;
  }

  /** Handshake requests and answers the registry accepted to pass on to their target node. */
  get handshakesRelayed(): number {
    return this.#relayed;
  }

  /** A copy, sorted by type. */
  byType(): Map<string, number> {
    return new Map([...this.#byType].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }
}

export const UNKNOWN_REQUEST_TYPE = 'unknown';

/** The relay channel of PROTOCOL.md §6.2: a request, and an accept or reject going back. */
const RELAY_TYPES: ReadonlySet<string> = new Set(['request_handshake', 'respond_handshake']);
