import type { PeerCrypto } from './peer-crypto.js';

/**
 * The peers whose AES-GCM contexts were used since they were last prepared
 * (`PeerCrypto.prepare()`), prepared `delayMs` after the first of those uses, when an exchange on a
 * local network is over: the next frame each way, typically the next request after an idle gap,
 * then finds its context made instead of setting one up cold on its path. One wake-up per
 * exchange: a deadline that every frame moved on would wake the process again for each frame
 * after the first timer.
 *
 * Not in the turn that used them: on loopback the peer that a datagram wakes often takes this
 * process's CPU (a synchronous wake-up) and runs before the rest of the turn, which then waits
 * behind it, cold, between the peer's answer and its reading; and whatever a turn still does after
 * sending an answer delays the process that the answer woke.
 */
export class ContextPrep {
  readonly #due = new Set<PeerCrypto>();
  #firstUse = 0;

  constructor(private readonly delayMs: number) {}

  /** A frame to or from the peer was sealed or opened at `now`. */
  used(crypto: PeerCrypto, now: number): void {
    if (this.#due.size === 0) this.#firstUse = now;
    this.#due.add(crypto);
  }

  /** When the contexts used are to be prepared (undefined: none are waiting). */
  get dueAt(): number | undefined {
    return this.#due.size > 0 ? this.#firstUse + this.delayMs : undefined;
  }

  /** Prepares the contexts used, if they are due at `now`. */
  prepareIfDue(now: number): void {
    const at = this.dueAt;
    if (at === undefined || now < at) return;
    for (const crypto of this.#due) crypto.prepare();
    this.clear();
  }

  clear(): void {
    this.#due.clear();
  }
}
