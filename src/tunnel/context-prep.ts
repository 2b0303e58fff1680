import type { PeerCrypto } from './peer-crypto.js';

/** How long after a peer's traffic its next AES-GCM contexts are made (see ContextPrep). */
export const PREPARE_AFTER_MS = 5;

/**
 * Schedules `PeerCrypto.prepare()` for the peers whose contexts were used: shortly after the
 * traffic, when the request or reply it belonged to has left, so that the next frame each way,
 * typically the next request after an idle gap, finds its context made. The delay keeps the work
 * off the path of the reply that a received frame is about to draw.
 */
export class ContextPrep {
  readonly #due = new Set<PeerCrypto>();
  #at: number | undefined;

  used(crypto: PeerCrypto, now: number): void {
    this.#due.add(crypto);
    this.#at ??= now + PREPARE_AFTER_MS;
  }

  nextTimeout(): number | undefined {
    return this.#at;
  }

  handleTimeout(now: number): void {
    if (this.#at === undefined || now < this.#at) return;
    this.#at = undefined;
    for (const crypto of this.#due) crypto.prepare();
    this.#due.clear();
  }

  clear(): void {
    this.#due.clear();
    this.#at = undefined;
  }
}
