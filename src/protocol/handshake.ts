import { assertU32, isUint } from './bytes.js';
import { encodeJson, parseJsonObject, type JsonObject } from './json.js';
import { fail, ok, type DecodeResult } from './result.js';

/** Trust handshake message on port 444 (PROTOCOL.md §6.1). */

/** The receiver reads one delivered segment and parses it as the whole message. */
export const HANDSHAKE_MAX_SIZE = 4096;

export const HANDSHAKE_TYPES = [
  'handshake_request',
  'handshake_accept',
  'handshake_reject',
  'handshake_revoke',
] as const;
export type HandshakeType = (typeof HANDSHAKE_TYPES)[number];

export interface HandshakeMessage {
  readonly type: HandshakeType;
  /** Sender node ID (self-asserted). */
  readonly nodeId: number;
  /** Sender Ed25519 public key, base64; may be empty. */
  readonly publicKey: string;
  readonly justification: string;
  /** Base64 Ed25519 signature of `handshake:<nodeId>:<receiver>` (same challenge for every type). */
  readonly signature: string;
  readonly reason: string;
  /** Unix seconds at send. */
  readonly timestamp: number;
}

export function isHandshakeType(value: unknown): value is HandshakeType {
  return typeof value === 'string' && (HANDSHAKE_TYPES as readonly string[]).includes(value);
}

/** JSON with every key present, in the reference's order. Throws RangeError if it would not fit one segment. */
export function encodeHandshakeMessage(msg: HandshakeMessage): Uint8Array {
  if (!isHandshakeType(msg.type)) throw new RangeError(`unknown handshake type: ${String(msg.type)}`);
  assertU32(msg.nodeId, 'node id');
  if (!Number.isSafeInteger(msg.timestamp)) throw new RangeError(`timestamp is not an integer: ${msg.timestamp}`);
  const out = encodeJson({
    type: msg.type,
    node_id: msg.nodeId,
    public_key: msg.publicKey,
    justification: msg.justification,
    signature: msg.signature,
    reason: msg.reason,
    timestamp: msg.timestamp,
  });
  if (out.length > HANDSHAKE_MAX_SIZE) throw new RangeError(`handshake message too long: ${out.length} bytes`);
  return out;
}

function str(obj: JsonObject, key: string): DecodeResult<string> {
  const v = obj[key];
  return typeof v === 'string' ? ok(v) : fail('bad_value', `handshake field "${key}" must be a string`);
}

/**
 * Decodes and type-checks a trust message. Every key must be present (the reference always sends
 * all of them); unknown keys are ignored. Timestamp freshness and signatures are checked elsewhere.
 */
export function decodeHandshakeMessage(bytes: Uint8Array): DecodeResult<HandshakeMessage> {
  if (bytes.length > HANDSHAKE_MAX_SIZE) return fail('too_long', `handshake message too long: ${bytes.length} bytes`);
  const parsed = parseJsonObject(bytes);
  if (!parsed.ok) return parsed;
  const obj = parsed.value;
  if (!isHandshakeType(obj.type)) return fail('bad_value', 'handshake field "type" is missing or unknown');
  const nodeId = obj.node_id;
  if (typeof nodeId !== 'number' || !isUint(nodeId, 32))
    return fail('bad_value', 'handshake field "node_id" must be a u32');
  const timestamp = obj.timestamp;
  if (typeof timestamp !== 'number' || !Number.isSafeInteger(timestamp)) {
    return fail('bad_value', 'handshake field "timestamp" must be an integer');
  }
  const publicKey = str(obj, 'public_key');
  if (!publicKey.ok) return publicKey;
  const justification = str(obj, 'justification');
  if (!justification.ok) return justification;
  const signature = str(obj, 'signature');
  if (!signature.ok) return signature;
  const reason = str(obj, 'reason');
  if (!reason.ok) return reason;
  return ok({
    type: obj.type,
    nodeId,
    publicKey: publicKey.value,
    justification: justification.value,
    signature: signature.value,
    reason: reason.value,
    timestamp,
  });
}
