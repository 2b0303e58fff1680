import type { NodeRecord, RegistryStore } from './store.js';

/** How old an answer of the shared store may be for the dashboard and an in-process beacon. */
const VIEW_TTL_MS = 1000;
/** Entries of the per-node caches (facts, trust pairs) kept at most. */
const MAX_ENTRIES = 100_000;

interface Cached<T> {
  value: T;
  at: number;
}

/**
 * Synchronous reads of a store shared by several processes, for the callers that cannot wait
 * (the dashboard's statistics, the beacon's directory): each answers from what the store said
 * within the last second, and asks it again in the background when that is older. A node or pair
 * not asked about before is unknown until the store has answered (the beacon retries).
 */
export class SharedView {
  #nodes: Cached<NodeRecord[]>;
  #pairs: Cached<[number, number][]>;
  readonly #facts = new Map<number, Cached<NodeRecord | undefined>>();
  readonly #trust = new Map<string, Cached<boolean>>();
  readonly #pending = new Set<string>();
  #closed = false;

  private constructor(
    private readonly store: RegistryStore,
    private readonly now: () => number,
    nodes: NodeRecord[],
    pairs: [number, number][],
  ) {
    const at = now();
    this.#nodes = { value: nodes, at };
    this.#pairs = { value: pairs, at };
  }

  static async start(store: RegistryStore, now: () => number): Promise<SharedView> {
    const [nodes, pairs] = await Promise.all([store.listRegistered(), store.listTrustPairs()]);
    return new SharedView(store, now, nodes, pairs);
  }

  nodes(): NodeRecord[] {
    this.#refresh('nodes', this.#nodes.at, async () => {
      this.#nodes = { value: await this.store.listRegistered(), at: this.now() };
    });
    return this.#nodes.value;
  }

  trustPairs(): [number, number][] {
    this.#refresh('pairs', this.#pairs.at, async () => {
      this.#pairs = { value: await this.store.listTrustPairs(), at: this.now() };
    });
    return this.#pairs.value;
  }

  node(id: number): NodeRecord | undefined {
    const cached = this.#facts.get(id);
    this.#refresh(`node:${id}`, cached?.at, async () => {
      const node = await this.store.getNode(id);
      this.#put(this.#facts, id, node);
    });
    return cached?.value;
  }

  trustPair(a: number, b: number): boolean | undefined {
    const key = a < b ? `${a}:${b}` : `${b}:${a}`;
    const cached = this.#trust.get(key);
    this.#refresh(`pair:${key}`, cached?.at, async () => {
      const [ab, ba] = await Promise.all([this.store.hasTrustClaim(a, b), this.store.hasTrustClaim(b, a)]);
      this.#put(this.#trust, key, ab && ba);
    });
    return cached?.value;
  }

  close(): void {
    this.#closed = true;
  }

  #put<K, T>(map: Map<K, Cached<T>>, key: K, value: T): void {
    if (map.size >= MAX_ENTRIES && !map.has(key)) {
      const oldest = map.keys().next();
      if (oldest.done !== true) map.delete(oldest.value);
    }
    map.delete(key);
    map.set(key, { value, at: this.now() });
  }

  /** Starts one background read for `key` when its answer is missing or older than the TTL. */
  #refresh(key: string, at: number | undefined, read: () => Promise<void>): void {
    if (this.#closed || this.#pending.has(key) || (at !== undefined && this.now() - at < VIEW_TTL_MS)) return;
    this.#pending.add(key);
    read()
      .catch(() => undefined)
      .finally(() => this.#pending.delete(key));
  }
}
