import type { JsonObject, JsonValue } from './json.js';

/**
 * pilot-ts's replay-proof registry signatures, an extension of PROTOCOL.md §5.3 that a Go
 * registry ignores. The reference signs fixed strings (`heartbeat:<id>`), which can be replayed
 * forever and say nothing about the rest of the request. In the signed-body form a request carries
 * `signed_at` (Unix milliseconds) and its signature covers the request's canonical JSON — its
 * `type` and every field except `signature` — under a fixed domain prefix.
 *
 * A registry that verifies this form says so in `register_ok.features`; clients use it only then
 * and fall back to the static challenges with a registry that does not (the Go one).
 */

/** `register_ok.features` entry: the registry verifies signed-body requests. */
export const FEATURE_SIGNED_BODY = 'signed-body-v2';
/** `register_ok.features` entry: the registry serves the `watch_handshakes` push channel. */
export const FEATURE_WATCH_HANDSHAKES = 'watch_handshakes';
/**
 * `register_ok.features` entry: once a connection carried a verified signed-body request of a node,
 * that node's heartbeats on the same connection may go unsigned (registry/session-binding.ts).
 */
export const FEATURE_SESSION_HEARTBEAT = 'session_heartbeat';

/** Field holding the signing time, in Unix milliseconds; its presence marks the signed-body form. */
export const SIGNED_AT_FIELD = 'signed_at';

const DOMAIN = 'pilot-registry-signed-body-v2\n';
/** Registry requests are flat objects with at most a list of tags; deeper input is refused. */
const MAX_DEPTH = 8;

/**
 * JSON with object keys sorted (by UTF-16 code units) and no whitespace; numbers and strings as
 * `JSON.stringify` writes them. Undefined when nested deeper than MAX_DEPTH.
 */
export function canonicalJson(value: JsonValue, depth = 0): string | undefined {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (depth >= MAX_DEPTH) return undefined;
  const parts: string[] = [];
  if (Array.isArray(value)) {
    for (const item of value) {
      const text = canonicalJson(item, depth + 1);
      if (text === undefined) return undefined;
      parts.push(text);
    }
    return `[${parts.join(',')}]`;
  }
  for (const key of Object.keys(value).sort()) {
    const text = canonicalJson(value[key] as JsonValue, depth + 1);
    if (text === undefined) return undefined;
    parts.push(`${JSON.stringify(key)}:${text}`);
  }
  return `{${parts.join(',')}}`;
}

/** The text a signed-body request's signature covers; undefined for input nested too deep. */
export function signedBodyText(msg: JsonObject): string | undefined {
  const body: JsonObject = {};
  for (const [key, value] of Object.entries(msg)) if (key !== 'signature') body[key] = value;
  const text = canonicalJson(body);
  return text === undefined ? undefined : DOMAIN + text;
}

/** Features a `register_ok` reply announces (none from a Go registry). */
export function registryFeatures(reply: JsonObject): Set<string> {
  const list = reply.features;
  return new Set(Array.isArray(list) ? list.filter((f): f is string => typeof f === 'string') : []);
}
