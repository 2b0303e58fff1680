import {
  createHash,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  type KeyObject,
} from 'node:crypto';
import { CryptoError } from './errors.js';

export const X25519_KEY_SIZE = 32;
export const TUNNEL_KEY_SIZE = 32;

// DER headers of PKCS#8 / SPKI structures for X25519 (RFC 8410); the raw key follows.
const PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex');
const KDF_LABEL = Buffer.from('pilot-tunnel-v1:', 'ascii');

/** The per-process X25519 key pair used for every tunnel key exchange (PROTOCOL.md §3.3). */
export class TunnelKeyPair {
  readonly #privateKey: KeyObject;
  /** Raw 32-byte public key, as carried in PILK/PILA frames. */
  readonly publicKey: Uint8Array;

  private constructor(privateKey: KeyObject) {
    this.#privateKey = privateKey;
    const der = createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
    this.publicKey = new Uint8Array(der.subarray(der.length - X25519_KEY_SIZE));
  }

  static generate(): TunnelKeyPair {
    return new TunnelKeyPair(generateKeyPairSync('x25519').privateKey);
  }

  /** From a raw 32-byte scalar (clamped per RFC 7748 by the curve code). */
  static fromPrivateKey(raw: Uint8Array): TunnelKeyPair {
    if (raw.length !== X25519_KEY_SIZE)
      throw new CryptoError('bad_key', `X25519 private key must be 32 bytes, got ${raw.length}`);
    return new TunnelKeyPair(
      createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, raw]), format: 'der', type: 'pkcs8' }),
    );
  }

  /** Raw X25519 output; throws CryptoError 'bad_key' for a malformed or low-order peer key. */
  sharedSecret(peerPublicKey: Uint8Array): Uint8Array {
    if (peerPublicKey.length !== X25519_KEY_SIZE) {
      throw new CryptoError('bad_key', `X25519 public key must be 32 bytes, got ${peerPublicKey.length}`);
    }
    try {
      const publicKey = createPublicKey({
        key: Buffer.concat([SPKI_PREFIX, peerPublicKey]),
        format: 'der',
        type: 'spki',
      });
      return new Uint8Array(diffieHellman({ privateKey: this.#privateKey, publicKey }));
    } catch (cause) {
      // OpenSSL refuses peer keys whose shared secret is all zeros (low-order points), as Go's crypto/ecdh does.
      throw new CryptoError('bad_key', 'X25519 key agreement failed', { cause });
    }
  }

  /** The AES-256-GCM key shared with the owner of `peerPublicKey`. */
  tunnelKey(peerPublicKey: Uint8Array): Uint8Array {
    return deriveTunnelKey(this.sharedSecret(peerPublicKey));
  }
}

/** SHA-256("pilot-tunnel-v1:" ‖ shared) — the reference's KDF (no HKDF, no salt). */
export function deriveTunnelKey(sharedSecret: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(KDF_LABEL).update(sharedSecret).digest());
}
