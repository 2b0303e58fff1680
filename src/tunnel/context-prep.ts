import type { PeerCrypto } from './peer-crypto.js';

/**
 * The peers whose AES-GCM contexts were used since they were last prepared
 * (`PeerCrypto.prepare()`), prepared once no context has been used for `quietMs`: the next frame
 * each way, typically the next request after an idle gap, then finds its context made instead of
 * setting one up cold on its path.
 *
 * Not in the turn that used them: on loopback the peer that a datagram wakes often takes this
 * process's CPU (a synchronous wake-up) and runs before the rest of the turn, which then waits
 * behind it, cold, between the peer's answer and its reading; and whatever a turn still does after
 * sending an answer delays the process that the answer woke.
 */
export class ContextPrep {
  readonly #due = new Set<PeerCrypto>();
  #lastUse = 0;

  constructor(private readonly quietMs: number) {}

  /** A frame to or from the peer was sealed or opened at `now`. */
  used(crypto: PeerCrypto, now: number): void {
    this.#due.add(crypto);
    this.#lastUse = now;
  }

  /** When the contexts used are to be prepared (undefined: none are waiting). */
  get dueAt(): number | undefined {
    return this.#due.size > 0 ? this.#lastUse + this.quietMs : undefined;
  }

  /** Prepares the contexts used, once they have been quiet for `quietMs` at `now`. */
  prepareIfQuiet(now: number): void {
    const at = this.dueAt;
    if (at === undefined || now < at) return;
    for (const crypto of this.#due) crypto.prepare();
    this.clear();
  }

  clear(): void {
    this.#due.clear();
  }
}
