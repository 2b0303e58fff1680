import { fromBase64 } from './crypto/base64.js';
import { PilotError } from './errors.js';
import { silentLogger, type Logger } from './log.js';
import type { JsonObject } from './protocol/json.js';

/**
 * Outcome of asking for a node's Ed25519 key: the key, "the registry does not know this node",
 * "the registry did not answer", or "too many look-ups in flight".
 */
export type KeyLookup =
  | { readonly status: 'ok'; readonly key: Uint8Array }
  | { readonly status: 'unknown' }
  | { readonly status: 'unreachable' }
  | { readonly status: 'busy' };

/**
 * Asks the registry for one node's key: resolves to the key, or to undefined when the registry
 * answered that it has none; rejects when the registry could not be asked (a registry outage).
 */
export type KeyFetch = (nodeId: number) => Promise<Uint8Array | undefined>;

export interface RegistryKeysOptions {
  maxEntries?: number;
  /** How long "the registry does not know this node" is remembered. */
  negativeTtlMs?: number;
  /** Minimum spacing of forced re-fetches per node, so forged frames cannot hammer the registry. */
  refetchIntervalMs?: number;
  /** Concurrent registry look-ups beyond this are refused ('busy'). */
  maxInFlight?: number;
  /** Told once when the registry stops answering look-ups, and once when it answers again. */
  log?: Logger;
  now?: () => number;
}

interface Entry {
  readonly key: Uint8Array | undefined;
  readonly fetchedAt: number;
}

/** The part of the registry client a look-up needs. */
export interface KeyDirectory {
  lookup(nodeId: number): Promise<JsonObject>;
}

/** Error codes that are the registry's answer ("no such node"), not a failure to reach it. */
const ANSWERED: ReadonlySet<string> = new Set(['not_found', 'refused', 'invalid_argument']);

/**
 * A `KeyFetch` over the registry's `lookup`: a refusal (unknown or unregistered node) is "no key";
 * a connection failure, a timeout or a registry error rejects.
 */
export function registryKeyFetch(registry: KeyDirectory): KeyFetch {
  return async (nodeId) => {
    let reply: JsonObject;
    try {
      reply = await registry.lookup(nodeId);
    } catch (err) {
      if (err instanceof PilotError && ANSWERED.has(err.code)) return undefined;
      throw err;
    }
    return typeof reply.public_key === 'string' ? fromBase64(reply.public_key) : undefined;
  };
}

/**
 * The Ed25519 keys the registry holds for nodes, for every part of the daemon that checks a
 * peer's signature (tunnel key exchange, trust handshakes, task receipts). Bounded in entries and
 * in concurrent look-ups; identical concurrent requests share one look-up. A registry outage is
 * reported as 'unreachable' (and logged once), never as an unknown node, and is not remembered.
 */
export class RegistryKeys {
  readonly #entries = new Map<number, Entry>();
  readonly #inFlight = new Map<number, Promise<KeyLookup>>();
  readonly #maxEntries: number;
  readonly #negativeTtlMs: number;
  readonly #refetchIntervalMs: number;
  readonly #maxInFlight: number;
  readonly #log: Logger;
  readonly #now: () => number;
  #outage = false;

  constructor(
    private readonly fetch: KeyFetch,
    options: RegistryKeysOptions = {},
  ) {
    this.#maxEntries = options.maxEntries ?? 4096;
    this.#negativeTtlMs = options.negativeTtlMs ?? 5000;
    this.#refetchIntervalMs = options.refetchIntervalMs ?? 1000;
    this.#maxInFlight = options.maxInFlight ?? 64;
    this.#log = options.log ?? silentLogger();
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
    if (pending !== undefined) return pending;
    if (this.#inFlight.size >= this.#maxInFlight) return Promise.resolve({ status: 'busy' });
    const promise = this.#fetch(nodeId);
    this.#inFlight.set(nodeId, promise);
    return promise;
  }

  async #fetch(nodeId: number): Promise<KeyLookup> {
    let key: Uint8Array | undefined;
    try {
      key = await this.fetch(nodeId);
    } catch (err) {
      if (!this.#outage) {
        this.#outage = true;
        this.#log.warn(
          { node: nodeId, err: err instanceof Error ? err.message : String(err) },
          'registry unreachable: node keys cannot be checked',
        );
      }
      return { status: 'unreachable' };
    } finally {
      this.#inFlight.delete(nodeId);
    }
    if (this.#outage) {
      this.#outage = false;
      this.#log.info({ node: nodeId }, 'registry reachable again: node keys can be checked');
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
