import type { Millis } from './types.js';

/** The earlier of two optional deadlines. */
export function earliest(a: Millis | undefined, b: Millis | undefined): Millis | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return a < b ? a : b;
}
