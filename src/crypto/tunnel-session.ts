import { createCipheriv, createDecipheriv, randomBytes, type CipherGCM, type DecipherGCM } from 'node:crypto';
import { CryptoError } from './errors.js';
import { ReplayWindow } from './replay-window.js';
import { TUNNEL_KEY_SIZE } from './tunnel-key.js';

export const NONCE_SIZE = 12;
export const NONCE_PREFIX_SIZE = 4;
export const TAG_SIZE = 16;
export const MAX_COUNTER = 0xffff_ffff_ffff_ffffn;

export interface SealedFrame {
  /** prefix[4] ‖ counter u64 BE. */
  readonly nonce: Uint8Array;
  /** AES-256-GCM ciphertext ‖ 16-byte tag. */
  readonly sealed: Uint8Array;
}

export type OpenErrorCode = 'replay' | 'too_old' | 'auth_failed' | 'truncated';

export class OpenError extends Error {
  override readonly name = 'OpenError';
  constructor(
    readonly code: OpenErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export type OpenResult =
  | { readonly ok: true; readonly value: Uint8Array; readonly counter: bigint }
  | { readonly ok: false; readonly error: OpenError };

export interface TunnelSessionOptions {
  /** Own nonce prefix; random by default. Inject only in tests. */
  readonly noncePrefix?: Uint8Array;
  /** Last counter already used; the next seal uses this + 1. Inject only in tests. */
  readonly sendCounter?: bigint;
}

/**
 * Per-peer AEAD context of PROTOCOL.md §3.3–3.4. Both directions share one key; each
 * side's random prefix keeps their nonces apart. No AAD, as in the reference.
 *
 * `prepareSeal()` and `prepareOpen()` make the AES-GCM context of the next frame ahead of time (for
 * the next send counter; for the peer's next counter after the highest received). Setting a context up is most of
 * what sealing or opening a small frame costs when the process has been idle, so a driver that
 * prepares between bursts takes that cost off the next request's path. A prepared context is
 * used only for exactly the counter it was made for.
 */
export class TunnelSession {
  readonly #key: Buffer;
  readonly noncePrefix: Uint8Array;
  #sendCounter: bigint;
  readonly #replay = new ReplayWindow();
  /** The peer's nonce prefix, once a frame from it authenticated. */
  #peerPrefix: Buffer | undefined;
  #nextSeal: { readonly nonce: Buffer; readonly cipher: CipherGCM } | undefined;
  #nextOpen: { readonly nonce: Buffer; readonly decipher: DecipherGCM } | undefined;

  constructor(key: Uint8Array, options: TunnelSessionOptions = {}) {
    if (key.length !== TUNNEL_KEY_SIZE)
      throw new CryptoError('bad_key', `tunnel key must be 32 bytes, got ${key.length}`);
    const prefix = options.noncePrefix ?? randomBytes(NONCE_PREFIX_SIZE);
    if (prefix.length !== NONCE_PREFIX_SIZE)
      throw new CryptoError('bad_key', `nonce prefix must be 4 bytes, got ${prefix.length}`);
    const counter = options.sendCounter ?? 0n;
    if (counter < 0n || counter > MAX_COUNTER) throw new RangeError(`send counter out of u64 range: ${counter}`);
    this.#key = Buffer.from(key);
    this.noncePrefix = new Uint8Array(prefix);
    this.#sendCounter = counter;
  }

  /** Counter carried by the most recent sealed frame (0 before the first). */
  get sendCounter(): bigint {
    return this.#sendCounter;
  }

  /** Highest counter accepted from the peer so far. */
  get highestReceived(): bigint {
    return this.#replay.max;
  }

  /** Encrypts one marshalled packet. Throws CryptoError 'counter_exhausted' rather than ever reusing a nonce. */
  seal(plaintext: Uint8Array): SealedFrame {
    const { nonce, chunks } = this.sealParts([plaintext]);
    const sealed = Buffer.concat(chunks);
    return {
      nonce: new Uint8Array(nonce),
      sealed: new Uint8Array(sealed.buffer, sealed.byteOffset, sealed.byteLength),
    };
  }

  /**
   * Encrypts the concatenation of `parts` without joining them first: the result is the
   * ciphertext in pieces followed by the tag, ready for a gathering send. `aad` is authenticated,
   * not sent (PILM frames bind their magic this way; PILS has none).
   */
  sealParts(parts: readonly Uint8Array[], aad?: Uint8Array): { nonce: Buffer; chunks: Buffer[] } {
    if (this.#sendCounter >= MAX_COUNTER)
      throw new CryptoError('counter_exhausted', 'tunnel send counter exhausted; re-key the session');
    this.#sendCounter += 1n;
    const { nonce, cipher } = this.#nextSeal ?? this.#newSeal(this.#sendCounter);
    this.#nextSeal = undefined;
    if (aad) cipher.setAAD(aad);
    const chunks: Buffer[] = [];
    for (const part of parts) if (part.length > 0) chunks.push(cipher.update(part));
    const rest = cipher.final();
    if (rest.length > 0) chunks.push(rest);
    chunks.push(cipher.getAuthTag());
    return { nonce, chunks };
  }

  /** Decrypts a frame from the peer; the counter is recorded only if authentication succeeds. */
  open(nonce: Uint8Array, sealed: Uint8Array, aad?: Uint8Array): OpenResult {
    if (nonce.length !== NONCE_SIZE)
      return failed('truncated', `nonce must be ${NONCE_SIZE} bytes, got ${nonce.length}`);
    if (sealed.length < TAG_SIZE) return failed('truncated', `sealed data shorter than the ${TAG_SIZE}-byte tag`);
    const nonceBuf = Buffer.from(nonce.buffer, nonce.byteOffset, nonce.byteLength);
    const counter = nonceBuf.readBigUInt64BE(NONCE_PREFIX_SIZE);
    const verdict = this.#replay.check(counter);
    if (verdict !== 'ok') return failed(verdict, `counter ${counter} refused: ${verdict}`);

    const split = sealed.length - TAG_SIZE;
    const ready = this.#nextOpen;
    this.#nextOpen = undefined;
    let plaintext: Buffer;
    try {
      const decipher = ready?.nonce.equals(nonceBuf)
        ? ready.decipher
        : createDecipheriv('aes-256-gcm', this.#key, nonceBuf);
      decipher.setAuthTag(sealed.subarray(split));
      if (aad) decipher.setAAD(aad);
      const body = decipher.update(sealed.subarray(0, split));
      const rest = decipher.final();
      plaintext = rest.length > 0 ? Buffer.concat([body, rest]) : body;
    } catch {
      return failed('auth_failed', 'AES-GCM authentication failed');
    }
    this.#replay.commit(counter);
    this.#peerPrefix ??= Buffer.from(nonceBuf.subarray(0, NONCE_PREFIX_SIZE));
    return { ok: true, value: new Uint8Array(plaintext.buffer, plaintext.byteOffset, plaintext.byteLength), counter };
  }

  /** Makes the context of the next seal, unless made already (see the class). */
  prepareSeal(): void {
    if (this.#nextSeal === undefined && this.#sendCounter < MAX_COUNTER)
      this.#nextSeal = this.#newSeal(this.#sendCounter + 1n);
  }

  /** Makes the context of the peer's next frame in order, once one of its frames has been opened (see the class). */
  prepareOpen(): void {
    const prefix = this.#peerPrefix;
    const counter = this.#replay.max + 1n;
    if (this.#nextOpen === undefined && prefix !== undefined && counter <= MAX_COUNTER) {
      const nonce = nonceOf(prefix, counter);
      this.#nextOpen = { nonce, decipher: createDecipheriv('aes-256-gcm', this.#key, nonce) };
    }
  }

  #newSeal(counter: bigint): { nonce: Buffer; cipher: CipherGCM } {
    const nonce = nonceOf(this.noncePrefix, counter);
    return { nonce, cipher: createCipheriv('aes-256-gcm', this.#key, nonce) };
  }
}

function nonceOf(prefix: Uint8Array, counter: bigint): Buffer {
  const nonce = Buffer.allocUnsafe(NONCE_SIZE);
  nonce.set(prefix, 0);
  nonce.writeBigUInt64BE(counter, NONCE_PREFIX_SIZE);
  return nonce;
}

function failed(code: OpenErrorCode, message: string): OpenResult {
  return { ok: false, error: new OpenError(code, message) };
}
