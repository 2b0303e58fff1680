import { performance } from 'node:perf_hooks';
import { DeadlineTimer } from '../deadline-timer.js';

/** The error Node's own APIs reject with when an AbortSignal fires (`name` 'AbortError'). */
export class AbortError extends Error {
  override readonly name = 'AbortError';
  readonly code = 'ABORT_ERR';
  constructor(message = 'The operation was aborted', options?: { cause?: unknown }) {
    super(message, options);
  }
}

export function abortError(signal: AbortSignal): AbortError {
  return new AbortError('The operation was aborted', { cause: signal.reason });
}

interface Deadline {
  readonly at: number;
  readonly expire: () => void;
}

/**
 * The timeouts of every wait in this process share one timer (see DeadlineTimer): a dial every few
 * hundred milliseconds with a 30 s timeout then sets and clears no timer of its own. While a wait
 * has a timeout the timer keeps the process alive, as its own `setTimeout` did.
 */
const deadlines = new Set<Deadline>();
const deadlineTimer = new DeadlineTimer((now) => {
  let next = Infinity;
  for (const d of [...deadlines]) {
    if (now >= d.at) d.expire();
    else next = Math.min(next, d.at);
  }
  return next;
});

export interface DeadlineOptions {
  signal?: AbortSignal | undefined;
  /** 0 or undefined: no timeout. */
  timeoutMs?: number | undefined;
  onTimeout: () => Error;
  /** Called once when the caller stops waiting (abort or timeout) before `promise` settled. */
  onAbandon: () => void;
}

/**
 * Waits for `promise` unless the signal fires or the timeout passes first. The underlying
 * operation cannot be cancelled, so `onAbandon` tells its owner to clean up whatever it yields later.
 */
export function withDeadline<T>(promise: Promise<T>, options: DeadlineOptions): Promise<T> {
  const { signal, timeoutMs, onTimeout, onAbandon } = options;
  return new Promise<T>((resolve, reject) => {
    let done = false;
    let deadline: Deadline | undefined;
    const finish = (): boolean => {
      if (done) return false;
      done = true;
      if (deadline !== undefined) {
        deadlines.delete(deadline);
        if (deadlines.size === 0) deadlineTimer.keepAlive(false);
      }
      signal?.removeEventListener('abort', onAbort);
      return true;
    };
    const giveUp = (err: Error): void => {
      if (!finish()) return;
      onAbandon();
      reject(err);
    };
    const onAbort = (): void => giveUp(abortError(signal as AbortSignal));
    if (signal?.aborted) {
      giveUp(abortError(signal));
      // Still observe the promise so a late rejection is not reported as unhandled.
      promise.catch(() => undefined);
      return;
    }
    signal?.addEventListener('abort', onAbort, { once: true });
    if (timeoutMs !== undefined && timeoutMs > 0) {
      deadline = { at: performance.now() + timeoutMs, expire: () => giveUp(onTimeout()) };
      deadlines.add(deadline);
      deadlineTimer.add(deadline.at);
      deadlineTimer.keepAlive(true);
    }
    promise.then(
      (value) => {
        if (finish()) resolve(value);
      },
      (err: unknown) => {
        if (finish()) reject(err);
      },
    );
  });
}
