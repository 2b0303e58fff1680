import type { JsonObject } from '../protocol/json.js';

/**
 * Request field readers with the reference's lenient semantics (PROTOCOL.md §5.3): numbers are
 * JSON numbers, truncated to integers; a missing, negative or out-of-range value reads as 0.
 */

export function u32Field(msg: JsonObject, key: string): number {
  const v = msg[key];
  if (typeof v !== 'number' || !Number.isFinite(v)) return 0;
  const n = Math.trunc(v);
  return n < 0 || n > 0xffffffff ? 0 : n;
}

export function u16Field(msg: JsonObject, key: string): number {
  const n = u32Field(msg, key);
  return n > 0xffff ? 0 : n;
}

/** A signed integer field (polo score deltas); undefined when absent or not a number. */
export function intField(msg: JsonObject, key: string): number | undefined {
  const v = msg[key];
  if (typeof v !== 'number' || !Number.isFinite(v)) return undefined;
  const n = Math.trunc(v);
  return Number.isSafeInteger(n) ? n : undefined;
}

export function strField(msg: JsonObject, key: string): string {
  const v = msg[key];
  return typeof v === 'string' ? v : '';
}

export function boolField(msg: JsonObject, key: string): boolean {
  return msg[key] === true;
}

export function hasField(msg: JsonObject, key: string): boolean {
  return Object.hasOwn(msg, key);
}
