import { fromBase64, toBase64 } from './base64.js';
import { ed25519Verify } from './ed25519.js';
import type { Identity } from './identity.js';

/** Signs an ASCII registry challenge such as `heartbeat:1` (PROTOCOL.md §5.3); standard base64 with padding. */
export function signChallenge(identity: Identity, challenge: string): string {
  return toBase64(identity.sign(Buffer.from(challenge, 'utf8')));
}

/** Verifies a registry challenge signature. Total: malformed base64 or lengths give false. */
export function verifyChallenge(publicKeyBase64: string, challenge: string, signatureBase64: string): boolean {
  const publicKey = fromBase64(publicKeyBase64);
  const signature = fromBase64(signatureBase64);
  if (publicKey === undefined || signature === undefined) return false;
  return ed25519Verify(publicKey, Buffer.from(challenge, 'utf8'), signature);
}
