import { fromBase64 } from '../crypto/base64.js';
import { toPilotError } from '../errors.js';
import type { Logger } from '../log.js';
import type { JsonObject } from '../protocol/json.js';
import type { BeaconDirectory, NodeFacts } from './core.js';

const POSITIVE_TTL_MS = 10 * 60_000;
const NEGATIVE_TTL_MS = 30_000;
const MAX_ENTRIES = 65_536;
const MAX_IN_FLIGHT = 64;

interface Entry {
  readonly facts: NodeFacts | undefined;
  readonly until: number;
}

/**
 * Node keys and visibility from a registry's public `lookup`, cached (positive answers 10 min,
 * unknown nodes 30 s). Asking for an unknown node starts a lookup and answers undefined; the
 * daemon retries its proof, and the retry finds the key. Trust pairs are not public: a beacon
 * outside the registry's process cannot tell them.
 */
export class RegistryDirectory implements BeaconDirectory {
  readonly #cache = new Map<number, Entry>();
  readonly #inFlight = new Set<number>();

  constructor(
    private readonly lookup: (nodeId: number) => Promise<JsonObject>,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  facts(nodeId: number): NodeFacts | undefined {
    const entry = this.#cache.get(nodeId);
    if (entry !== undefined && entry.until > this.now()) return entry.facts;
    this.#fetch(nodeId);
    return entry?.facts;
  }

  #fetch(nodeId: number): void {
    if (this.#inFlight.has(nodeId) || this.#inFlight.size >= MAX_IN_FLIGHT) return;
    this.#inFlight.add(nodeId);
    this.lookup(nodeId)
      .then(
        (reply) => {
          const key = typeof reply.public_key === 'string' ? fromBase64(reply.public_key) : undefined;
          this.#store(nodeId, key === undefined ? undefined : { publicKey: key, isPublic: reply.public === true });
        },
        (err: unknown) => {
          const e = toPilotError(err);
          // An unknown node is remembered as such for a while; a failing registry is asked again next time.
          if (e.code === 'not_found' || e.code === 'refused') this.#store(nodeId, undefined);
          else this.log.debug({ node: nodeId, err: e.message }, 'node lookup for a beacon proof failed');
        },
      )
      .finally(() => this.#inFlight.delete(nodeId));
  }

  #store(nodeId: number, facts: NodeFacts | undefined): void {
    this.#cache.delete(nodeId);
    if (this.#cache.size >= MAX_ENTRIES) this.#cache.delete(this.#cache.keys().next().value as number);
    this.#cache.set(nodeId, { facts, until: this.now() + (facts === undefined ? NEGATIVE_TTL_MS : POSITIVE_TTL_MS) });
  }
}
