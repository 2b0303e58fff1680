import { signChallenge } from '../crypto/registry-signing.js';
import type { Identity } from '../crypto/identity.js';
import type { JsonObject } from '../protocol/json.js';

/**
 * Ed25519 signatures are deterministic, and the registry accepts each timestamped signature once,
 * so the same challenge signed twice in one second would be refused as a replay. Timestamps are
 * therefore made strictly increasing per (key, challenge) across every client of this process.
 */
const lastUsed = new Map<string, number>();
const PRUNE_AT = 4096;

function nextTimestamp(key: string, nowS: number): number {
  const ts = Math.max(nowS, (lastUsed.get(key) ?? 0) + 1);
  if (lastUsed.size >= PRUNE_AT) {
    for (const [k, t] of lastUsed) if (t < nowS) lastUsed.delete(k);
  }
  lastUsed.set(key, ts);
  return ts;
}

/** `timestamp` and `signature` fields over `<challenge>:<timestamp>`. */
export function signedFields(identity: Identity, challengeText: string, nowMs = Date.now()): JsonObject {
  const timestamp = nextTimestamp(`${identity.publicKeyBase64}|${challengeText}`, Math.floor(nowMs / 1000));
  return { timestamp, signature: signChallenge(identity, `${challengeText}:${timestamp}`) };
}
