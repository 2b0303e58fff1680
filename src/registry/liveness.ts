import { PagedTimes } from './paged-times.js';

/** A node not seen for this long is offline: not resolvable, not listed (PROTOCOL.md §5.7). */
export const STALE_AFTER_MS = 180_000;

/** A node id, or a stored record that may carry the times a shared store keeps. */
export type LivenessSubject =
  | number
  | { readonly id: number; readonly lastSeen?: number; readonly lastProven?: number };

export interface LivenessChanges {
  readonly seen: ReadonlyMap<number, number>;
  readonly proven: ReadonlyMap<number, number>;
}

const later = (a: number | undefined, b: number | undefined): number | undefined =>
  a === undefined ? b : b === undefined ? a : Math.max(a, b);

/**
 * Per-node times: `last_seen` (register, heartbeat) and the last request the node proved with its
 * key. With an embedded store they live in this process's memory only, on purpose: on start every
 * stored node gets a fresh grace period. With a shared store, the times this process records are
 * also collected (`takeChanges`) and written in batches, and a record read from the store brings
 * the times other processes wrote: the later of the two counts.
 */
export class Liveness {
  readonly #seen = new PagedTimes();
  readonly #proven = new PagedTimes();
  readonly #changes: { seen: Map<number, number>; proven: Map<number, number> } | undefined;

  constructor(opts: { trackChanges?: boolean } = {}) {
    this.#changes = opts.trackChanges === true ? { seen: new Map(), proven: new Map() } : undefined;
  }

  touch(id: number, now: number): void {
    this.#seen.set(id, now);
    this.#changes?.seen.set(id, now);
  }

  proven(id: number, now: number): void {
    this.#proven.set(id, now);
    this.#changes?.proven.set(id, now);
  }

  lastSeen(node: LivenessSubject): number | undefined {
    return typeof node === 'number' ? this.#seen.get(node) : later(this.#seen.get(node.id), node.lastSeen);
  }

  isOnline(node: LivenessSubject, now: number): boolean {
    const seen = this.lastSeen(node);
    return seen !== undefined && now - seen <= STALE_AFTER_MS;
  }

  /** Nodes seen within the stale window (a pass over the map: no store read). */
  onlineCount(now: number): number {
    let count = 0;
    this.#seen.forEachValue((seen) => {
      if (now - seen <= STALE_AFTER_MS) count++;
    });
    return count;
  }

  /** True when the key holder proved itself within the stale window. */
  recentlyProven(node: LivenessSubject, now: number): boolean {
    const at = typeof node === 'number' ? this.#proven.get(node) : later(this.#proven.get(node.id), node.lastProven);
    return at !== undefined && now - at <= STALE_AFTER_MS;
  }

  forget(id: number): void {
    this.#seen.delete(id);
    this.#proven.delete(id);
  }

  /** Times recorded since the last call (only when tracking changes); undefined when none. */
  takeChanges(): LivenessChanges | undefined {
    const changes = this.#changes;
    if (changes === undefined || (changes.seen.size === 0 && changes.proven.size === 0)) return undefined;
    const taken = { seen: new Map(changes.seen), proven: new Map(changes.proven) };
    changes.seen.clear();
    changes.proven.clear();
    return taken;
  }
}
