/** Outcome of asking for a node's Ed25519 key. */
export type KeyLookup = { readonly status: 'ok'; readonly key: Uint8Array } | { readonly status: 'unknown' } | { readonly status: 'busy' };

export interface KeyCacheOptions {
  maxEntries?: number;
  /** How long "the registry does not know this node" is remembered. */
  negativeTtlMs?: number;
  /** Minimum spacing of forced re-fetches per node, so forged frames cannot hammer the registry. */
  refetchIntervalMs?: number;
  /** Concurrent registry look-ups beyond this are refused ('busy'). */
  maxInFlight?: number;
  now?: () => number;
}

interface Entry {
  readonly key: Uint8Array | undefined;
  readonly fetchedAt: number;
}

/**
 * Caches the Ed25519 keys the registry holds for nodes. Bounded in entries and in concurrent
 * look-ups; identical concurrent requests share one look-up.
 */
export class PublicKeyCache {
  readonly #entries = new Map<number, Entry>();
  readonly #inFlight = new Map<number, Promise<KeyLookup>>();
  readonly #maxEntries: number;
  readonly #negativeTtlMs: number;
  readonly #refetchIntervalMs: number;
  readonly #maxInFlight: number;
  readonly #now: () => number;

  constructor(
    private readonly lookup: (nodeId: number) => Promise<Uint8Array | undefined>,
    options: KeyCacheOptions = {},
  ) {
    this.#maxEntries = options.maxEntries ?? 4096;
    this.#negativeTtlMs = options.negativeTtlMs ?? 5000;
    this.#refetchIntervalMs = options.refetchIntervalMs ?? 1000;
    this.#maxInFlight = options.maxInFlight ?? 64;
    this.#now = options.now ?? Date.now;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** `refresh` asks the registry again unless this node was fetched very recently. */
  get(nodeId: number, refresh = false): Promise<KeyLookup> {
    const entry = this.#entries.get(nodeId);
    const now = this.#now();
    if (entry) {
      const age = now - entry.fetchedAt;
      const fresh = refresh ? age < this.#refetchIntervalMs : entry.key !== undefined || age < this.#negativeTtlMs;
      if (fresh) return Promise.resolve(toLookup(entry.key));
    }
    const pending = this.#inFlight.get(nodeId);
    if (pending) return pending;
    if (this.#inFlight.size >= this.#maxInFlight) return Promise.resolve({ status: 'busy' });
    const promise = this.#fetch(nodeId);
    this.#inFlight.set(nodeId, promise);
    return promise;
  }

  async #fetch(nodeId: number): Promise<KeyLookup> {
    let key: Uint8Array | undefined;
    try {
      key = await this.lookup(nodeId);
    } catch {
      key = undefined;
    } finally {
      this.#inFlight.delete(nodeId);
    }
    if (key !== undefined && key.length !== 32) key = undefined;
    this.#entries.delete(nodeId);
    if (this.#entries.size >= this.#maxEntries) {
      const oldest = this.#entries.keys().next();
      if (!oldest.done) this.#entries.delete(oldest.value);
    }
    this.#entries.set(nodeId, { key: key ? new Uint8Array(key) : undefined, fetchedAt: this.#now() });
    return toLookup(key);
  }

  clear(): void {
    this.#entries.clear();
  }
}

function toLookup(key: Uint8Array | undefined): KeyLookup {
  return key ? { status: 'ok', key } : { status: 'unknown' };
}
