import type { Millis } from './types.js';

/** Every timer of one connection (PROTOCOL.md §7), as data: one deadline each, in one table. */
export const Timer = {
  /** Retransmit the SYN, or give up the dial. */
  Syn: 0,
  DelayedAck: 1,
  /** Send a small segment Nagle is holding back. */
  Nagle: 2,
  /** Probe a zero window. */
  Persist: 3,
  /** Retransmit the FIN, or give up on its ACK. */
  Fin: 4,
  /** Leave TIME_WAIT. */
  TimeWait: 5,
  /** Abort, whatever the state (a port's maximum lifetime). */
  Expiry: 6,
  /** Retransmission timeout (armed by the sender while data is in flight). */
  Rto: 7,
  /** RACK's reordering window ends: a segment still unacknowledged then is lost (armed by the sender). */
  Reorder: 8,
  /** Nothing received for the idle timeout: the peer is gone. */
  Idle: 9,
  /** Nothing sent for the keepalive interval. */
  Keepalive: 10,
  /** Tail loss probe: no ACK for the last segments sent (armed by the sender). */
  Probe: 11,
} as const;
export type Timer = (typeof Timer)[keyof typeof Timer];

const TIMER_COUNT = 12;

/** One deadline per timer, unset or a time; `next()` is the earliest. */
export class TimerTable {
  private readonly at: (Millis | undefined)[] = new Array<Millis | undefined>(TIMER_COUNT).fill(undefined);

  get(timer: Timer): Millis | undefined {
    return this.at[timer];
  }

  set(timer: Timer, at: Millis): void {
    this.at[timer] = at;
  }

  /** Arms the timer unless it is armed already (a deadline that must not slide). */
  arm(timer: Timer, at: Millis): void {
    this.at[timer] ??= at;
  }

  clear(timer: Timer): void {
    this.at[timer] = undefined;
  }

  /** True (and the timer cleared) when it is set and `now` has reached it. */
  fire(timer: Timer, now: Millis): boolean {
    const at = this.at[timer];
    if (at === undefined || now < at) return false;
    this.at[timer] = undefined;
    return true;
  }

  isExpired(timer: Timer, now: Millis): boolean {
    const at = this.at[timer];
    return at !== undefined && now >= at;
  }

  clearAll(): void {
    this.at.fill(undefined);
  }

  next(): Millis | undefined {
    let t: Millis | undefined;
    for (const at of this.at) if (at !== undefined && (t === undefined || at < t)) t = at;
    return t;
  }
}
