import { verifyChallenge } from '../crypto/registry-signing.js';
import type { JsonObject } from '../protocol/json.js';
import { RequestError } from './request-error.js';

/** How far a request timestamp may be from the server clock, either way. */
export const TIMESTAMP_WINDOW_S = 300;

/**
 * Signature checks of PROTOCOL.md §5.3 with replay protection (§14 #5): a request carrying a
 * numeric `timestamp` is signed over `<challenge>:<timestamp>`, must be within ±300 s, and each
 * (key, signature) is accepted once. Without `timestamp` the static challenge is verified, which
 * is what Go daemons send.
 */
export class SignatureVerifier {
  /** `<key>|<signature>` → ms after which the entry can go (its timestamp left the window). */
  readonly #seen = new Map<string, number>();

  verify(publicKey: string, challenge: string, msg: JsonObject, now: number, opts: { requireTimestamp?: boolean } = {}): void {
    const signature = msg.signature;
    if (typeof signature !== 'string' || signature === '') {
      throw new RequestError('bad_signature', `missing signature (expected over "${challenge}")`);
    }
    const timestamp = msg.timestamp;
    if (timestamp === undefined && !opts.requireTimestamp) {
      if (!verifyChallenge(publicKey, challenge, signature)) {
        throw new RequestError('bad_signature', `signature does not verify over "${challenge}" with the node's key`);
      }
      return;
    }
    if (typeof timestamp !== 'number' || !Number.isSafeInteger(timestamp)) {
      throw new RequestError('invalid_argument', 'timestamp must be an integer number of Unix seconds');
    }
    const nowS = Math.floor(now / 1000);
    if (Math.abs(nowS - timestamp) > TIMESTAMP_WINDOW_S) {
      throw new RequestError('replay', `timestamp ${timestamp} is more than ${TIMESTAMP_WINDOW_S} s from the registry clock (${nowS})`);
    }
    const signed = `${challenge}:${timestamp}`;
    if (!verifyChallenge(publicKey, signed, signature)) {
      throw new RequestError('bad_signature', `signature does not verify over "${signed}" with the node's key`);
    }
    const key = `${publicKey}|${signature}`;
    const until = this.#seen.get(key);
    if (until !== undefined && until > now) throw new RequestError('replay', 'signature already used (replayed request)');
    this.#seen.set(key, (timestamp + TIMESTAMP_WINDOW_S + 1) * 1000);
  }

  prune(now: number): void {
    for (const [key, until] of this.#seen) if (until <= now) this.#seen.delete(key);
  }

  get size(): number {
    return this.#seen.size;
  }
}
