/** How much later than the armed timer the engine's next deadline may be before the timer is moved. */
const SLACK_MS = 100;

/**
 * The transport engine's one timer, kept at (or before) its next deadline.
 *
 * It is set at the end of the event-loop turn (`armLater`), after the tunnel has sealed and sent
 * the turn's packets: setting one up after an idle gap costs as much as a seal, and no deadline of
 * the engine comes due sooner than a timer could fire (a millisecond). A deadline that moved a
 * little later (as the RTO does on every ACK) leaves the timer alone: it fires early and re-arms,
 * cheaper than re-creating a timer per flush. One that went away or moved far later (a delayed ACK
 * that rode on a segment, the RTO once everything is acknowledged) moves the timer: waking an idle
 * process for nothing costs far more than a new timer.
 */
export class EngineTimer {
  #timer: NodeJS.Timeout | undefined;
  #at = Infinity;
  #queued = false;
  #stopped = false;

  /** `next`: the engine's next deadline (ms on `now`'s clock); `fire`: runs the engine's timeouts. */
  constructor(
    private readonly next: () => number | undefined,
    private readonly now: () => number,
    private readonly fire: () => void,
  ) {}

  get armed(): boolean {
    return this.#timer !== undefined;
  }

  armLater(): void {
    if (this.#queued || this.#stopped) return;
    this.#queued = true;
    setImmediate(() => {
      this.#queued = false;
      this.#arm();
    });
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #arm(): void {
    if (this.#stopped) return;
    const next = this.next() ?? Infinity;
    if (this.#timer && this.#at <= next && next - this.#at < SLACK_MS) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#at = next;
    if (next === Infinity) return;
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined;
        this.#at = Infinity;
        this.fire();
      },
      Math.max(0, Math.ceil(next - this.now())),
    );
  }
}
