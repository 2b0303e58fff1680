import { assertU32 } from './bytes.js';
import { encodeJson, parseJsonObject, type JsonObject } from './json.js';
import { fail, type DecodeResult } from './result.js';
import { decodeFirst, StreamDecoder, type ByteQueue, type Decoded } from './stream.js';

/** Registry wire (PROTOCOL.md §5.1): u32 BE length + UTF-8 JSON object, at most 1 MiB each way. */

export const REGISTRY_MAX_MESSAGE = 1048576;

/** Throws RangeError if the JSON text exceeds 1 MiB. */
export function encodeRegistryFrame(message: JsonObject): Uint8Array {
  const body = encodeJson(message);
  if (body.length > REGISTRY_MAX_MESSAGE) throw new RangeError(`registry message too long: ${body.length} bytes`);
  const frame = Buffer.allocUnsafe(4 + body.length);
  frame.writeUInt32BE(body.length, 0);
  frame.set(body, 4);
  return frame;
}

function registryStep(queue: ByteQueue): DecodeResult<JsonObject> | null {
  if (queue.length < 4) return null;
  const length = queue.readUint32(0);
  if (length > REGISTRY_MAX_MESSAGE)
    return fail('too_long', `registry frame length ${length} exceeds ${REGISTRY_MAX_MESSAGE}`);
  if (queue.length < 4 + length) return null;
  queue.skip(4);
  return parseJsonObject(queue.take(length));
}

/** Decodes the first frame of `bytes`; `length` tells how many bytes it used. */
export function decodeRegistryFrame(bytes: Uint8Array): DecodeResult<Decoded<JsonObject>> {
  return decodeFirst(registryStep, bytes, 'registry frame');
}

/**
 * Splits a registry TCP stream into JSON objects. An oversize length or a body that is not a JSON
 * object fails the stream (the reference closes the connection in both cases).
 */
export class RegistryFrameSplitter extends StreamDecoder<JsonObject> {
  constructor() {
    super(registryStep);
  }
}

function id(n: number): string {
  assertU32(n, 'node id');
  return String(n);
}

/** The ASCII strings a node signs with its Ed25519 key for registry requests (§5.3). */
export const challenge = {
  rotateKey: (nodeId: number): string => `rotate:${id(nodeId)}`,
  resolve: (requesterId: number, nodeId: number): string => `resolve:${id(requesterId)}:${id(nodeId)}`,
  reportTrust: (nodeId: number, peerId: number): string => `report_trust:${id(nodeId)}:${id(peerId)}`,
  revokeTrust: (nodeId: number, peerId: number): string => `revoke_trust:${id(nodeId)}:${id(peerId)}`,
  setVisibility: (nodeId: number): string => `set_visibility:${id(nodeId)}`,
  setTaskExec: (nodeId: number): string => `set_task_exec:${id(nodeId)}`,
  setHostname: (nodeId: number): string => `set_hostname:${id(nodeId)}`,
  setTags: (nodeId: number): string => `set_tags:${id(nodeId)}`,
  deregister: (nodeId: number): string => `deregister:${id(nodeId)}`,
  heartbeat: (nodeId: number): string => `heartbeat:${id(nodeId)}`,
  pollHandshakes: (nodeId: number): string => `poll_handshakes:${id(nodeId)}`,
  punch: (nodeA: number, nodeB: number): string => `punch:${id(nodeA)}:${id(nodeB)}`,
  /** Also the challenge of every port-444 trust message (§6.1). */
  requestHandshake: (fromNodeId: number, toNodeId: number): string => `handshake:${id(fromNodeId)}:${id(toNodeId)}`,
  respondHandshake: (nodeId: number, peerId: number): string => `respond:${id(nodeId)}:${id(peerId)}`,
} as const;
