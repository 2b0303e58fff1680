import { performance } from 'node:perf_hooks';

/**
 * One timer for any number of deadlines (times on the `performance.now()` clock). It is armed at
 * the earliest deadline it was told of and left alone while later ones come and go, so adding a
 * deadline that is not the earliest costs no timer call; when it fires, `due` handles what is due
 * and returns the next deadline still wanted (Infinity for none). A timer call on a process that
 * was idle costs tens of microseconds; a dial made every few hundred milliseconds with a 30 s
 * timeout then makes none.
 *
 * The timer does not keep the process alive (its owner's sockets do) unless told to (`keepAlive`).
 */
export class DeadlineTimer {
  #timer: NodeJS.Timeout | undefined;
  #at = Infinity;
  #keepAlive = false;

  constructor(private readonly due: (now: number) => number) {}

  /** Whether a timer is armed (for resource reports). */
  get armed(): boolean {
    return this.#timer !== undefined;
  }

  /**
   * Whether the armed timer keeps the process alive, as a `setTimeout` of its own would for a
   * deadline still wanted; off once nothing waits (the timer may stay armed until it fires).
   */
  keepAlive(on: boolean): void {
    if (on === this.#keepAlive) return;
    this.#keepAlive = on;
    if (on) this.#timer?.ref();
    else this.#timer?.unref();
  }

  /** A deadline at `at` is wanted. */
  add(at: number): void {
    if (at < this.#at) this.#arm(at);
  }

  stop(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#at = Infinity;
  }

  #arm(at: number): void {
    this.stop();
    if (at === Infinity) return;
    this.#at = at;
    this.#timer = setTimeout(() => this.#fire(), Math.max(0, Math.ceil(at - performance.now())));
    if (!this.#keepAlive) this.#timer.unref();
  }

  #fire(): void {
    this.#timer = undefined;
    this.#at = Infinity;
    // setTimeout may fire a little before `at` (it rounds): what is not due yet is re-armed. A
    // deadline added while `due` ran may already have armed the timer earlier.
    const next = this.due(performance.now());
    if (next < this.#at) this.#arm(next);
  }
}
