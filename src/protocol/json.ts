import { utf8Decode, utf8Encode } from './bytes.js';
import { fail, ok, type DecodeResult } from './result.js';

export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject;
export interface JsonObject {
  [key: string]: JsonValue;
}

export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Parses UTF-8 JSON text; invalid UTF-8 inside strings becomes U+FFFD (as with Go). */
export function parseJson(bytes: Uint8Array): DecodeResult<JsonValue> {
  try {
    return ok(JSON.parse(utf8Decode(bytes)) as JsonValue);
  } catch (err) {
    return fail('bad_json', `invalid JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
}

export function parseJsonObject(bytes: Uint8Array): DecodeResult<JsonObject> {
  const parsed = parseJson(bytes);
  if (!parsed.ok) return parsed;
  if (!isJsonObject(parsed.value)) return fail('bad_json', 'JSON value is not an object');
  return ok(parsed.value);
}

const GO_ESCAPES: Record<string, string> = {
  '<': '\\u003c',
  '>': '\\u003e',
  '&': '\\u0026',
  '\u2028': '\\u2028',
  '\u2029': '\\u2029',
};

/**
 * Compact JSON with Go's escaping of <, >, & and U+2028/U+2029. The replacement is safe on the
 * whole text because those characters can only occur inside string literals.
 */
export function stringifyJson(value: JsonValue): string {
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (c) => GO_ESCAPES[c] ?? c);
}

export function encodeJson(value: JsonValue): Buffer {
  return utf8Encode(stringifyJson(value));
}
