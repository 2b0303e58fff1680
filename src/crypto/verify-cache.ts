import { createPublicKey, type KeyObject, verify } from 'node:crypto';
import { fromBase64 } from './base64.js';
import { ED25519_PUBLIC_KEY_SIZE, ED25519_SIGNATURE_SIZE } from './ed25519.js';

/** A Map used as a bounded LRU: a hit moves the entry to the end, the first entry is the oldest. */
class Lru<V> {
  readonly #map = new Map<string, V>();
  constructor(private readonly max: number) {}

  get(key: string): V | undefined {
    const value = this.#map.get(key);
    if (value !== undefined) {
      this.#map.delete(key);
      this.#map.set(key, value);
    }
    return value;
  }

  set(key: string, value: V): void {
    this.#map.delete(key);
    this.#map.set(key, value);
    if (this.#map.size > this.max) this.#map.delete(this.#map.keys().next().value as string);
  }

  get size(): number {
    return this.#map.size;
  }
}

export interface VerifyCacheLimits {
  /** Imported public keys kept (a JWK import costs about a tenth of a verification). */
  readonly keys: number;
  /** Verified (key, message, signature) triples kept, for signatures that repeat. */
  readonly triples: number;
}

const DEFAULT_LIMITS: VerifyCacheLimits = { keys: 4096, triples: 16384 };

/**
 * Ed25519 verification of base64 keys and signatures for a server that sees the same keys again and
 * again: imported keys are kept in a bounded LRU, and a caller may ask for a positive result to be
 * remembered (a static signature over a fixed text verifies the same forever, so a repeat of the
 * exact triple needs no new verification). Failures are never remembered. Total: malformed input
 * gives false.
 */
export class CachedEd25519Verifier {
  readonly #keys: Lru<KeyObject>;
  readonly #verified: Lru<true>;

  constructor(limits: VerifyCacheLimits = DEFAULT_LIMITS) {
    this.#keys = new Lru(limits.keys);
    this.#verified = new Lru(limits.triples);
  }

  verify(publicKeyBase64: string, message: string, signatureBase64: string, remember = false): boolean {
    const triple = remember ? `${publicKeyBase64}\n${signatureBase64}\n${message}` : '';
    if (remember && this.#verified.get(triple) !== undefined) return true;
    const key = this.#key(publicKeyBase64);
    const signature = fromBase64(signatureBase64);
    if (key === undefined || signature === undefined || signature.length !== ED25519_SIGNATURE_SIZE) return false;
    let ok: boolean;
    try {
      ok = verify(null, Buffer.from(message, 'utf8'), key, signature);
    } catch {
      return false;
    }
    if (ok && remember) this.#verified.set(triple, true);
    return ok;
  }

  #key(publicKeyBase64: string): KeyObject | undefined {
    const known = this.#keys.get(publicKeyBase64);
    if (known !== undefined) return known;
    const raw = fromBase64(publicKeyBase64);
    if (raw === undefined || raw.length !== ED25519_PUBLIC_KEY_SIZE) return undefined;
    let key: KeyObject;
    try {
      const x = Buffer.from(raw.buffer, raw.byteOffset, raw.length).toString('base64url');
      key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' });
    } catch {
      return undefined;
    }
    this.#keys.set(publicKeyBase64, key);
    return key;
  }

  /** Entries held (keys, remembered triples). */
  get sizes(): { keys: number; triples: number } {
    return { keys: this.#keys.size, triples: this.#verified.size };
  }
}
