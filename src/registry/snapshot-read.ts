import { PilotError } from '../errors.js';
import type { JsonObject } from '../protocol/json.js';

/**
 * Strict readers for snapshot values (PROTOCOL.md §5.9). Each names the offending path in its
 * error, so that an operator can find the bad spot in a large file. Go writes a nil map or slice
 * as `null`, so optional collections accept `null` as empty.
 */

export function snapshotError(path: string, problem: string): PilotError {
  return new PilotError('invalid_argument', `invalid registry snapshot: ${path}: ${problem}`);
}

const describe = (value: unknown): string =>
  value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value;

export function readObject(value: unknown, path: string): JsonObject {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw snapshotError(path, `expected an object, got ${describe(value)}`);
  }
  return value as JsonObject;
}

/** Entries of a map (`null`/absent = empty), at most `max` of them. */
export function readMapEntries(value: unknown, path: string, max: number): [string, unknown][] {
  if (value === undefined || value === null) return [];
  const entries = Object.entries(readObject(value, path));
  if (entries.length > max) throw snapshotError(path, `${entries.length} entries (at most ${max})`);
  return entries;
}

/** Items of an array (`null`/absent = empty), at most `max` of them. */
export function readArray(value: unknown, path: string, max: number): unknown[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw snapshotError(path, `expected an array, got ${describe(value)}`);
  if (value.length > max) throw snapshotError(path, `${value.length} items (at most ${max})`);
  return value;
}

export function readInteger(value: unknown, path: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw snapshotError(
      path,
      `expected an integer from ${min} to ${max}, got ${typeof value === 'number' ? value : describe(value)}`,
    );
  }
  return value;
}

export const readU32 = (value: unknown, path: string): number => readInteger(value, path, 0, 0xffffffff);

/** A node id: a u32 other than 0. */
export const readNodeId = (value: unknown, path: string): number => readInteger(value, path, 1, 0xffffffff);

export function readBool(value: unknown, path: string): boolean {
  if (typeof value !== 'boolean') throw snapshotError(path, `expected true or false, got ${describe(value)}`);
  return value;
}

export const readOptionalBool = (value: unknown, path: string): boolean =>
  value === undefined ? false : readBool(value, path);

export function readString(value: unknown, path: string, maxLength: number): string {
  if (typeof value !== 'string') throw snapshotError(path, `expected a string, got ${describe(value)}`);
  if (value.length > maxLength) throw snapshotError(path, `${value.length} characters (at most ${maxLength})`);
  return value;
}

export const readOptionalString = (value: unknown, path: string, maxLength: number): string =>
  value === undefined ? '' : readString(value, path, maxLength);

/** A map key that must be a decimal id (`"7"`), as Go writes integer map keys. */
export function readIdKey(key: string, path: string, min: number, max: number): number {
  if (!/^(0|[1-9]\d{0,9})$/.test(key))
    throw snapshotError(path, `key ${JSON.stringify(key.slice(0, 40))} is not a decimal id`);
  const id = Number(key);
  if (id < min || id > max) throw snapshotError(path, `id ${id} is out of range (${min} to ${max})`);
  return id;
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$/;

/** An RFC 3339 time as Go writes `time.Time` (fractions up to nanoseconds), in Unix ms. */
export function readTime(value: unknown, path: string): number {
  const text = readString(value, path, 40);
  const ms = RFC3339.test(text) ? Date.parse(text) : Number.NaN;
  if (!Number.isFinite(ms)) throw snapshotError(path, `${JSON.stringify(text)} is not an RFC 3339 time`);
  return ms;
}

/** `"<a>:<b>"` with two node ids (trust pairs and claims). */
export function readIdPair(value: unknown, path: string): [number, number] {
  const text = readString(value, path, 21);
  const m = /^([1-9]\d{0,9}):([1-9]\d{0,9})$/.exec(text);
  const a = Number(m?.[1]);
  const b = Number(m?.[2]);
  if (m === null || a > 0xffffffff || b > 0xffffffff || a === b) {
    throw snapshotError(path, `${JSON.stringify(text)} is not "<id>:<id>" with two different node ids`);
  }
  return [a, b];
}
