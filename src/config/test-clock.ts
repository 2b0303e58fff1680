import { readFileSync } from 'node:fs';

/**
 * Test hook for the task timeouts (1 minute to answer, 1 hour at the queue head): when the
 * environment variable `PILOT_TEST_CLOCK_OFFSET_FILE` names a file, the task service reads a
 * decimal number of milliseconds from it and adds it to the daemon clock, re-reading the file at
 * most every 100 ms. A missing or unreadable file means offset 0. Off (no file access) when the
 * variable is unset.
 */
export const CLOCK_OFFSET_ENV = 'PILOT_TEST_CLOCK_OFFSET_FILE';

export function taskClock(base: () => number, env: NodeJS.ProcessEnv = process.env): () => number {
  const file = env[CLOCK_OFFSET_ENV];
  if (file === undefined || file === '') return base;
  let offset = 0;
  let readAt = -Infinity;
  return () => {
    const t = Date.now();
    if (t - readAt >= 100) {
      readAt = t;
      try {
        const n = Number(readFileSync(file, 'utf8').trim());
        offset = Number.isFinite(n) ? n : 0;
      } catch {
        offset = 0;
      }
    }
    return base() + offset;
  };
}
