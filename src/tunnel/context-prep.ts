import type { PeerCrypto } from './peer-crypto.js';

/**
 * The peers whose AES-GCM contexts were used since they were last prepared
 * (`PeerCrypto.prepare()`). The driver prepares them once a turn's frames are out: the process is
 * awake and warm then, and the next frame each way, typically the next request after an idle gap,
 * finds its context made instead of setting one up cold on its path.
 *
 * A turn that only sent to a peer (a request, whose answer is on its way) makes the context of
 * that answer and, unless `sealAfterRequest`, leaves our next seal to the turn that hears from the
 * peer: the peer often runs on the CPU of the process that woke it and starts only when this one
 * has nothing left to do, so work after a request delays its answer.
 */
export class ContextPrep {
  readonly #due = new Set<PeerCrypto>();
  readonly #heard = new Set<PeerCrypto>();

  constructor(private readonly sealAfterRequest = false) {}

  /** A frame to the peer was sealed. */
  sealed(crypto: PeerCrypto): void {
    this.#due.add(crypto);
  }

  /** A frame from the peer was opened. */
  opened(crypto: PeerCrypto): void {
    this.#due.add(crypto);
    this.#heard.add(crypto);
  }

  prepareAll(): void {
    for (const crypto of this.#due) crypto.prepare(this.sealAfterRequest || this.#heard.has(crypto));
    this.#due.clear();
    this.#heard.clear();
  }

  clear(): void {
    this.#due.clear();
    this.#heard.clear();
  }
}
