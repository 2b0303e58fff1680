import { CachedEd25519Verifier } from '../crypto/verify-cache.js';
import type { JsonObject } from '../protocol/json.js';
import { SIGNED_AT_FIELD, signedBodyText } from '../protocol/registry-auth.js';
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

/** Request types get small numbers for the replay keys; beyond this many the key string is used. */
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
   * `signed_at` of the newest accepted request (embedded stores), by node id × type index, or by
   * `<key>|<type>` for a request without a node (register). Numbers keep the entry small.
   */
  readonly #newest = new Map<number | string, number>();
  readonly #typeIndex = new Map<string, number>();
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
        ? this.#advance(this.#replayKey(publicKey, type, opts.nodeId), at)
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

  #replayKey(publicKey: string, type: string, nodeId: number | undefined): number | string {
    let index = this.#typeIndex.get(type);
    if (index === undefined && this.#typeIndex.size < MAX_TYPE_INDEX) {
      index = this.#typeIndex.size;
      this.#typeIndex.set(type, index);
    }
    return nodeId === undefined || index === undefined ? `${publicKey}|${type}` : nodeId * MAX_TYPE_INDEX + index;
  }

  #advance(key: number | string, at: number): boolean {
    const newest = this.#newest.get(key);
    if (newest !== undefined && at <= newest) return false;
    this.#newest.set(key, at);
    return true;
  }

  /** Drops entries that the clock window alone now protects. */
  async prune(now: number): Promise<void> {
    for (const [key, at] of this.#newest) if (at < now - SIGNED_AT_WINDOW_MS) this.#newest.delete(key);
    await this.#shared?.pruneSignedAt(now - SIGNED_AT_WINDOW_MS);
  }

  get size(): number {
    return this.#newest.size;
  }
}
