import { bytesEqual } from './bytes.js';
import { ED25519_PUBLIC_KEY_SIZE, ed25519Verify } from './ed25519.js';
import type { Identity } from './identity.js';
import { X25519_KEY_SIZE } from './tunnel-key.js';

export const AUTH_MESSAGE_SIZE = 40;

// ASCII "auth" without a colon: the bytes the reference actually signs (PROTOCOL.md §3.2).
const AUTH_TAG = Buffer.from('auth', 'ascii');

/** The fields of a received PILA frame that take part in verification. */
export interface AuthClaim {
  readonly node: number;
  readonly x25519PublicKey: Uint8Array;
  /** Ed25519 key embedded in the frame; only compared, never trusted. */
  readonly ed25519PublicKey: Uint8Array;
  readonly signature: Uint8Array;
}

export type AuthVerdict = 'ok' | 'key_mismatch' | 'bad_signature';

/** `auth` ‖ node u32 BE ‖ X25519 public key (40 bytes). */
export function authMessage(node: number, x25519PublicKey: Uint8Array): Uint8Array {
  if (!Number.isInteger(node) || node < 0 || node > 0xffffffff) throw new RangeError(`node id out of range: ${node}`);
  if (x25519PublicKey.length !== X25519_KEY_SIZE)
    throw new RangeError(`X25519 public key must be 32 bytes, got ${x25519PublicKey.length}`);
  const msg = Buffer.allocUnsafe(AUTH_MESSAGE_SIZE);
  AUTH_TAG.copy(msg, 0);
  msg.writeUInt32BE(node, 4);
  msg.set(x25519PublicKey, 8);
  return new Uint8Array(msg);
}

/** The 64-byte signature for our own PILA frame. */
export function signAuth(identity: Identity, node: number, x25519PublicKey: Uint8Array): Uint8Array {
  return identity.sign(authMessage(node, x25519PublicKey));
}

/**
 * Verifies a PILA claim against the Ed25519 key the registry holds for `claim.node`
 * (PROTOCOL.md §3.6, §14 #11). Never throws.
 */
export function verifyAuth(claim: AuthClaim, expectedEd25519PublicKey: Uint8Array): AuthVerdict {
  if (
    expectedEd25519PublicKey.length !== ED25519_PUBLIC_KEY_SIZE ||
    !bytesEqual(claim.ed25519PublicKey, expectedEd25519PublicKey)
  ) {
    return 'key_mismatch';
  }
  if (
    !Number.isInteger(claim.node) ||
    claim.node < 0 ||
    claim.node > 0xffffffff ||
    claim.x25519PublicKey.length !== X25519_KEY_SIZE
  ) {
    return 'bad_signature';
  }
  const ok = ed25519Verify(expectedEd25519PublicKey, authMessage(claim.node, claim.x25519PublicKey), claim.signature);
  return ok ? 'ok' : 'bad_signature';
}
