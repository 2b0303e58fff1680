/** Polling for tests: one loop with a deadline that says what it waited for. */

/** `undefined`, `false` or a throw mean "not yet". */
export type Probe<T> = () => T | undefined | false | Promise<T | undefined | false>;

export interface UntilOptions {
  /** A fixed pause between probes (for a probe that compares with its previous call). */
  readonly everyMs?: number;
  /** The state waited on, shown when the time is up. */
  readonly show?: () => unknown;
}

/**
 * Calls `probe` until it gives a value and returns that value. Without `everyMs` it polls every 5 ms
 * at first, then less often (up to every 100 ms), so a condition that holds soon is seen at once and
 * a slow probe (a process started per call) does not run in a busy loop. After `timeoutMs` it
 * throws, naming `what`, the probe's last error and `show()`.
 */
export async function until<T>(
  what: string,
  probe: Probe<T>,
  timeoutMs = 10_000,
  options: UntilOptions = {},
): Promise<T> {
  const { everyMs, show } = options;
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (let pause = everyMs ?? 5; ; pause = everyMs ?? Math.min(100, pause * 2)) {
    try {
      const v = await probe();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      const why = last instanceof Error ? `: ${last.message}` : '';
      const state = show === undefined ? '' : ` (${JSON.stringify(show())})`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}${state}`, { cause: last });
    }
    await new Promise((resolve) => setTimeout(resolve, pause));
  }
}

/** `until` for a condition. */
export async function waitFor(cond: () => boolean, timeoutMs = 3000, what = 'condition'): Promise<void> {
  await until(what, cond, timeoutMs);
}
