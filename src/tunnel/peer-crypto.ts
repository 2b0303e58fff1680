import { bytesEqual } from '../crypto/bytes.js';
import { NONCE_PREFIX_SIZE, OpenError, TunnelSession, type OpenResult } from '../crypto/index.js';

/** Receive windows kept per peer, one per nonce prefix the peer has used recently. */
export const MAX_ACTIVE_PREFIXES = 4;
/** Prefixes whose window was evicted; frames carrying them are refused outright. */
export const MAX_RETIRED_PREFIXES = 256;

function prefixKey(nonce: Uint8Array): number {
  return (((nonce[0] ?? 0) << 24) | ((nonce[1] ?? 0) << 16) | ((nonce[2] ?? 0) << 8) | (nonce[3] ?? 0)) >>> 0;
}

/**
 * The crypto context shared with one peer: the AES key derived from its current X25519 key,
 * our send session (own random prefix, counter from 1) and receive replay windows.
 *
 * A Go peer picks a new nonce prefix and restarts its counter at 1 every time it receives a
 * key-exchange frame, under the same key. Keying the receive windows by the sender's prefix
 * means such a reset starts a fresh window for the new prefix while every earlier prefix keeps
 * its own, so frames captured before the reset stay refused (PROTOCOL.md §14 #10).
 */
export class PeerCrypto {
  readonly peerX25519: Uint8Array;
  readonly send: TunnelSession;
  readonly #key: Uint8Array;
  readonly #windows = new Map<number, TunnelSession>();
  readonly #retired = new Set<number>();

  constructor(key: Uint8Array, peerX25519: Uint8Array) {
    this.#key = new Uint8Array(key);
    this.peerX25519 = new Uint8Array(peerX25519);
    this.send = new TunnelSession(this.#key);
  }

  isKeyFrom(peerX25519: Uint8Array): boolean {
    return bytesEqual(this.peerX25519, peerX25519);
  }

  /** Decrypts one PILS (or PILM, with its magic as `aad`) body; state changes only when the frame authenticates. */
  open(nonce: Uint8Array, sealed: Uint8Array, aad?: Uint8Array): OpenResult {
    if (nonce.length < NONCE_PREFIX_SIZE) return refused('truncated', 'nonce too short');
    const prefix = prefixKey(nonce);
    // Our own prefix coming back is a reflected frame of ours (both directions share the key).
    if (prefix === prefixKey(this.send.noncePrefix)) return refused('replay', 'reflected frame');
    if (this.#retired.has(prefix)) return refused('too_old', 'nonce prefix retired');
    const known = this.#windows.get(prefix);
    if (known) {
      const result = known.open(nonce, sealed, aad);
      if (result.ok) {
        this.#windows.delete(prefix);
        this.#windows.set(prefix, known);
      }
      return result;
    }
    const fresh = new TunnelSession(this.#key);
    const result = fresh.open(nonce, sealed, aad);
    if (!result.ok) return result;
    if (this.#windows.size >= MAX_ACTIVE_PREFIXES) this.#retireOldest();
    this.#windows.set(prefix, fresh);
    return result;
  }

  /** Makes the contexts of our next seal and of the next frame under the peer's latest prefix (see TunnelSession). */
  prepare(): void {
    this.send.prepareSeal();
    let latest: TunnelSession | undefined;
    for (const w of this.#windows.values()) latest = w;
    latest?.prepareOpen();
  }

  #retireOldest(): void {
    const oldest = this.#windows.keys().next();
    if (oldest.done) return;
    this.#windows.delete(oldest.value);
    if (this.#retired.size >= MAX_RETIRED_PREFIXES) {
      const first = this.#retired.values().next();
      if (!first.done) this.#retired.delete(first.value);
    }
    this.#retired.add(oldest.value);
  }
}

function refused(code: 'replay' | 'too_old' | 'truncated', message: string): OpenResult {
  return { ok: false, error: new OpenError(code, message) };
}
