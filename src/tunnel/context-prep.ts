import type { PeerCrypto } from './peer-crypto.js';

/**
 * The peers whose AES-GCM contexts were used since they were last prepared
 * (`PeerCrypto.prepare()`). The driver prepares them once a turn's frames are out: the process is
 * awake and warm then, and the next frame each way, typically the next request after an idle gap,
 * finds its context made instead of setting one up cold on its path.
 *
 * A turn that sent a request to a peer (a dial's SYN, sent ahead of the turn's end) and heard
 * nothing from it makes the context of the answer and, unless `sealAfterRequest`, leaves our next
 * seal to the turn that hears from the peer: the peer often runs on the CPU of the process that
 * woke it and starts only when this one has nothing left to do, so work after a request delays
 * its answer. A turn that only sent something else (the ACK or reset that closes an exchange)
 * makes both: nothing waits for an answer then, and the next request finds its seal ready.
 */
export class ContextPrep {
  readonly #due = new Set<PeerCrypto>();
  readonly #heard = new Set<PeerCrypto>();
  readonly #requested = new Set<PeerCrypto>();

  constructor(private readonly sealAfterRequest = false) {}

  /** A frame to the peer was sealed; `request`: it starts an exchange whose answer is awaited. */
  sealed(crypto: PeerCrypto, request = false): void {
    this.#due.add(crypto);
    if (request) this.#requested.add(crypto);
  }

  /** A frame from the peer was opened. */
  opened(crypto: PeerCrypto): void {
    this.#due.add(crypto);
    this.#heard.add(crypto);
  }

  prepareAll(): void {
    for (const crypto of this.#due)
      crypto.prepare(this.sealAfterRequest || this.#heard.has(crypto) || !this.#requested.has(crypto));
    this.clear();
  }

  clear(): void {
    this.#due.clear();
    this.#heard.clear();
    this.#requested.clear();
  }
}
