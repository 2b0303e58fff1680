import { CachedEd25519Verifier } from '../crypto/verify-cache.js';
import type { JsonObject } from '../protocol/json.js';
import { SIGNED_AT_FIELD, signedBodyText } from '../protocol/registry-auth.js';
import { PagedTimes } from './paged-times.js';
import { RequestError } from './request-error.js';
import type { SharedRegistryState } from './store.js';

/** How far `signed_at` may be from the server clock, either way. */
export const SIGNED_AT_WINDOW_MS = 300_000;

export type SignatureForm = 'static' | 'signed-body';

export interface VerifyOptions {
  /** Whether the reference's static challenge may stand in for a signed body (Go daemons). */
  readonly staticAllowed: boolean;
  /** The node the request acts for, when it has one (replay state is then kept by id, not key). */
  readonly nodeId?: number;
}

/** Request types whose replay state is kept by node id; beyond this many the key string is used. */
const MAX_TYPE_INDEX = 64;

/**
 * Signature checks of PROTOCOL.md §5.3 and of pilot-ts's signed-body form (protocol/registry-auth.ts).
 *
 * A signed-body request is accepted when its signature covers its canonical body, its `signed_at`
 * is within ±5 minutes of the server clock and not before the server started, and it is later
 * than the newest request of the same type accepted from the key. So a captured request can be
 * replayed neither as it is (not later) nor with other content (the signature covers every field)
 * nor as another type (the type is signed). Memory: one entry per (key, type) seen in the window.
 *
 * With a store shared by several processes, the newest `signed_at` per (key, type) lives in the
 * store (a conditional upsert), so a request replayed to another process is refused too, and a
 * restart forgets nothing: the start-time bound is then not needed.
 */
export class SignatureVerifier {
  /**
   * `signed_at` of the newest accepted request (embedded stores): by type, then node id in paged
   * arrays (8 bytes a node), or by `<key>|<type>` for a request without a node yet (a new key's
   * register) or of a type beyond the first MAX_TYPE_INDEX seen.
   */
  readonly #byNode = new Map<string, PagedTimes>();
  readonly #byKey = new Map<string, number>();
  /** Server start (ms): earlier requests may have been accepted by the previous process. */
  readonly #startedAt: number;
  readonly #shared: SharedRegistryState | undefined;
  /** Keys imported once; static signatures (the same text every time) verified once per triple. */
  readonly #ed25519 = new CachedEd25519Verifier();

  constructor(startedAt: number, shared?: SharedRegistryState) {
    this.#shared = shared;
    this.#startedAt = shared === undefined ? startedAt : 0;
  }

  async verify(
    publicKey: string,
    staticChallenge: string,
    msg: JsonObject,
    now: number,
    opts: VerifyOptions,
  ): Promise<SignatureForm> {
    const signature = msg.signature;
    if (typeof signature !== 'string' || signature === '') {
      throw new RequestError(
        'bad_signature',
        opts.staticAllowed
          ? `missing signature (expected over "${staticChallenge}")`
          : 'missing signature (a signed body is required)',
      );
    }
    if (msg[SIGNED_AT_FIELD] === undefined) {
      if (!opts.staticAllowed) {
        throw new RequestError(
          'bad_signature',
          `a static signature over "${staticChallenge}" is refused here: sign the request body (${SIGNED_AT_FIELD})`,
        );
      }
      if (!this.#ed25519.verify(publicKey, staticChallenge, signature, true)) {
        throw new RequestError(
          'bad_signature',
          `signature does not verify over "${staticChallenge}" with the node's key`,
        );
      }
      return 'static';
    }
    const at = this.#verifyBody(publicKey, signature, msg, now);
    const type = String(msg.type);
    const later =
      this.#shared === undefined
        ? this.#advance(publicKey, type, opts.nodeId, at)
        : await this.#shared.advanceSignedAt(publicKey, type, at);
    if (!later) {
      throw new RequestError(
        'replay',
        `not later than the last "${type}" accepted from this key (replayed or reordered request)`,
      );
    }
    return 'signed-body';
  }

  /** Checks everything but the high-water mark; returns `signed_at`. */
  #verifyBody(publicKey: string, signature: string, msg: JsonObject, now: number): number {
    const at = msg[SIGNED_AT_FIELD];
    if (typeof at !== 'number' || !Number.isSafeInteger(at)) {
      throw new RequestError('invalid_argument', `${SIGNED_AT_FIELD} must be an integer number of Unix milliseconds`);
    }
    if (Math.abs(now - at) > SIGNED_AT_WINDOW_MS) {
      throw new RequestError(
        'replay',
        `${SIGNED_AT_FIELD} ${at} is more than ${SIGNED_AT_WINDOW_MS / 1000} s from the registry clock (${now})`,
      );
    }
    if (at < this.#startedAt)
      throw new RequestError('replay', `${SIGNED_AT_FIELD} ${at} is before the registry started (${this.#startedAt})`);
    const text = signedBodyText(msg);
    if (text === undefined) throw new RequestError('invalid_argument', 'request nested too deeply');
    if (!this.#ed25519.verify(publicKey, text, signature)) {
      throw new RequestError('bad_signature', "signature does not verify over the request body with the node's key");
    }
    return at;
  }

  #advance(publicKey: string, type: string, nodeId: number | undefined, at: number): boolean {
    const times = nodeId === undefined ? undefined : this.#nodeTimes(type);
    if (times !== undefined && nodeId !== undefined) {
      // A request accepted under the key before the node existed (its first register) counts too.
      const early = this.#byKey.size === 0 ? undefined : this.#byKey.get(`${publicKey}|${type}`);
      const newest = Math.max(times.get(nodeId) ?? -Infinity, early ?? -Infinity);
      if (at <= newest) return false;
      times.set(nodeId, at);
      return true;
    }
    const key = `${publicKey}|${type}`;
    const newest = this.#byKey.get(key);
    if (newest !== undefined && at <= newest) return false;
    this.#byKey.set(key, at);
    return true;
  }

  #nodeTimes(type: string): PagedTimes | undefined {
    let times = this.#byNode.get(type);
    if (times === undefined && this.#byNode.size < MAX_TYPE_INDEX) {
      times = new PagedTimes();
      this.#byNode.set(type, times);
    }
    return times;
  }

  /**
   * Files what was accepted of `type` from a key before it had a node (a new key's register) under
   * the node id it got, where it takes 8 bytes instead of a string entry.
   */
  adopt(publicKey: string, type: string, nodeId: number): void {
    const key = `${publicKey}|${type}`;
    const at = this.#byKey.get(key);
    const times = this.#nodeTimes(type);
    if (at === undefined || times === undefined) return;
    times.set(nodeId, Math.max(at, times.get(nodeId) ?? -Infinity));
    this.#byKey.delete(key);
  }

  /** Drops entries that the clock window alone now protects. */
  async prune(now: number): Promise<void> {
    const stale = (at: number): boolean => at < now - SIGNED_AT_WINDOW_MS;
    for (const [key, at] of this.#byKey) if (stale(at)) this.#byKey.delete(key);
    for (const times of this.#byNode.values()) times.deleteWhere(stale);
    await this.#shared?.pruneSignedAt(now - SIGNED_AT_WINDOW_MS);
  }

  get size(): number {
    let size = this.#byKey.size;
    for (const times of this.#byNode.values()) size += times.size;
    return size;
  }
}
