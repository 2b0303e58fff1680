import type { PeerCrypto } from './peer-crypto.js';

/**
 * The peers whose AES-GCM contexts were used since they were last prepared
 * (`PeerCrypto.prepare()`). The driver prepares them once a turn's frames are out: the process is
 * awake and warm then, and the next frame each way, typically the next request after an idle gap,
 * finds its context made instead of setting one up cold on its path.
 */
export class ContextPrep {
  readonly #due = new Set<PeerCrypto>();

  used(crypto: PeerCrypto): void {
    this.#due.add(crypto);
  }

  prepareAll(): void {
    for (const crypto of this.#due) crypto.prepare();
    this.#due.clear();
  }

  clear(): void {
    this.#due.clear();
  }
}
