import { performance } from 'node:perf_hooks';
import { PilotError } from '../errors.js';
import type { SocketAddr } from '../protocol/address.js';
import { DeadlineTimer } from '../deadline-timer.js';

/** What a dial waits with, besides its connection id. */
export interface DialWait {
  remote: SocketAddr;
  timeoutMs: number;
  signal?: AbortSignal;
}

export interface PendingDialsOptions {
  /** Gives up the engine's connection of a dial that failed here (timeout, abort, unreachable). */
  abort: (connId: number) => void;
  /** Called once when a dial has had no answer for `stallMs` (the tunnel may switch to relay). */
  onStall?: (node: number) => void;
  stallMs: number;
}

interface PendingDial<C> extends DialWait {
  /** Makes the dial's connection and resolves the dial with it. */
  complete: () => C;
  reject: (err: Error) => void;
  /** When the dial fails with a timeout (performance clock). */
  deadline: number;
  /** When the SYNs count as unanswered (`onStall`); Infinity once told, or without. */
  stallAt: number;
}

/**
 * The stack's dials from their SYN until the handshake answers, fails or runs out of time, with one
 * timer for all their deadlines (see DeadlineTimer).
 *
 * A dial's connection object is made when the answer comes, not while the SYN travels: the peer
 * often runs on the CPU of the process that woke it, and then starts only once that process has
 * nothing left to do, so work done after a request is sent delays its answer.
 */
export class PendingDials<C> {
  readonly #dials = new Map<number, PendingDial<C>>();
  readonly #timer = new DeadlineTimer((at) => this.#due(at));

  constructor(private readonly options: PendingDialsOptions) {}

  get size(): number {
    return this.#dials.size;
  }

  get timerArmed(): boolean {
    return this.#timer.armed;
  }

  /**
   * Waits for the handshake of the engine's connection `connId`, whose SYN is queued; `make` makes
   * the object the dial resolves with (not yet registered anywhere).
   */
  wait<T extends C>(connId: number, w: DialWait, make: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const { remote, timeoutMs, signal } = w;
      const onAbort = (): void =>
        this.fail(connId, signal?.reason instanceof Error ? signal.reason : new PilotError('timeout', 'dial aborted'));
      const settled = (): void => {
        signal?.removeEventListener('abort', onAbort);
        this.#dials.delete(connId);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      const start = performance.now();
      const { stallMs, onStall } = this.options;
      // Fields written out, not spread from `w`: one shape for every dial, whatever `w` holds.
      const dial: PendingDial<C> = {
        remote,
        timeoutMs,
        signal,
        complete: () => {
          const made = make();
          settled();
          resolve(made);
          return made;
        },
        reject: (err) => {
          settled();
          reject(err);
        },
        deadline: start + timeoutMs,
        stallAt: onStall && stallMs < timeoutMs ? start + stallMs : Infinity,
      };
      this.#dials.set(connId, dial);
      this.#timer.add(Math.min(dial.stallAt, dial.deadline));
    });
  }

  /** The handshake completed: the dial's connection (to register), its promise resolved. */
  connected(connId: number): C | undefined {
    return this.#dials.get(connId)?.complete();
  }

  /** The engine closed `connId`: a dial still waiting for it fails with `error(remote)`. */
  closed(connId: number, error: (remote: SocketAddr) => Error): void {
    const dial = this.#dials.get(connId);
    if (dial) dial.reject(error(dial.remote));
  }

  /** Fails a waiting dial and gives up its connection. */
  fail(connId: number, err: Error): void {
    const dial = this.#dials.get(connId);
    if (!dial) return;
    dial.reject(err);
    this.options.abort(connId);
  }

  /** Fails every dial still waiting for `node`. */
  failTo(node: number, err: Error): void {
    for (const [connId, dial] of [...this.#dials]) if (dial.remote.addr.node === node) this.fail(connId, err);
  }

  /** The stack is closing: every waiting dial fails, and the timer stops. */
  close(err: Error): void {
    this.#timer.stop();
    for (const dial of [...this.#dials.values()]) dial.reject(err);
  }

  /** The dials whose timeout ran out fail; those that stalled are told; returns the next deadline. */
  #due(at: number): number {
    let next = Infinity;
    for (const [connId, dial] of [...this.#dials]) {
      if (at >= dial.deadline) {
        this.fail(connId, new PilotError('timeout', `dial to ${dial.remote.port} timed out`));
        continue;
      }
      if (at >= dial.stallAt) {
        dial.stallAt = Infinity;
        this.options.onStall?.(dial.remote.addr.node);
      }
      next = Math.min(next, dial.stallAt, dial.deadline);
    }
    return next;
  }
}
