import { signChallenge } from '../crypto/registry-signing.js';
import type { Identity } from '../crypto/identity.js';
import type { JsonObject } from '../protocol/json.js';
import { SIGNED_AT_FIELD, signedBodyText } from '../protocol/registry-auth.js';

/**
 * The registry accepts a signed-body request only if its `signed_at` is later than that of the
 * last request of the same type it accepted from the key, so times are made strictly increasing
 * per (key, type) across every client of this process.
 */
const lastUsed = new Map<string, number>();
const PRUNE_AT = 4096;

function nextSignedAt(key: string, nowMs: number): number {
  const at = Math.max(nowMs, (lastUsed.get(key) ?? 0) + 1);
  if (lastUsed.size >= PRUNE_AT) {
    for (const [k, t] of lastUsed) if (t < nowMs - 1000) lastUsed.delete(k);
  }
  lastUsed.set(key, at);
  return at;
}

/** The request with `signed_at` and a signature over its canonical body (protocol/registry-auth.ts). */
export function signBody(identity: Identity, msg: JsonObject, nowMs = Date.now()): JsonObject {
  const signed: JsonObject = {
    ...msg,
    [SIGNED_AT_FIELD]: nextSignedAt(`${identity.publicKeyBase64}|${String(msg.type)}`, nowMs),
  };
  delete signed.signature;
  const text = signedBodyText(signed);
  if (text === undefined) throw new RangeError('registry request nested too deeply to sign');
  signed.signature = signChallenge(identity, text);
  return signed;
}

/** The request with the reference's static signature over `challenge` (PROTOCOL.md §5.3). */
export function signStatic(identity: Identity, msg: JsonObject, challenge: string): JsonObject {
  return { ...msg, signature: signChallenge(identity, challenge) };
}
