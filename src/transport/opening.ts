import type { Millis } from './types.js';

const EMPTY = new Uint8Array(0);
/** A repeated SYN waits twice as long each time, up to this. */
const SYN_BACKOFF_MAX_MS = 8_000;

/**
 * The opening handshake of one connection: the peer's SYN, our SYN or SYN-ACK and its
 * transmissions, and the first round-trip sample each side takes from it. The dialer measures its
 * SYN against the SYN-ACK; the responder its SYN-ACK against the dialer's first ACK (the dialer
 * sends none before), so that a server's first replies have a sample too, not the 1 s initial RTO
 * and no tail loss probe. A handshake packet sent more than once gives no sample (Karn).
 */
export class Opening {
  /** Sequence number of the peer's SYN (a repeat of it is answered, not accepted again). */
  peerSynSeq = 0;
  /** Dialer: the stream's first bytes, riding in the SYN until it is answered. */
  synData: Uint8Array = EMPTY;
  #synXmits = 0;
  #synSentAt: Millis = 0;
  #synAckXmits = 0;
  #synAckSentAt: Millis = 0;
  #synAckAnswered = false;

  get synXmits(): number {
    return this.#synXmits;
  }

  /** Our SYN went out (again): returns when to repeat it. */
  synSent(now: Millis, initialRtoMs: Millis): Millis {
    this.#synXmits++;
    this.#synSentAt = now;
    return now + Math.min(initialRtoMs * 2 ** (this.#synXmits - 1), SYN_BACKOFF_MAX_MS);
  }

  /** The SYN-ACK arrived: the round trip of our SYN, if it went once. */
  synAnswered(now: Millis): Millis | undefined {
    this.synData = EMPTY;
    return this.#synXmits === 1 ? now - this.#synSentAt : undefined;
  }

  synAckSent(now: Millis): void {
    if (this.#synAckAnswered) return;
    this.#synAckXmits++;
    this.#synAckSentAt = now;
  }

  /** An ACK from the dialer: the round trip of our SYN-ACK, the first time, if it went once. */
  synAckAnswered(now: Millis): Millis | undefined {
    if (this.#synAckAnswered || this.#synAckXmits === 0) return undefined;
    this.#synAckAnswered = true;
    return this.#synAckXmits === 1 ? now - this.#synAckSentAt : undefined;
  }
}
