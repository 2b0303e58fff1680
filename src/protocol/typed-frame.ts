import { assertU32 } from './bytes.js';
import { fail, ok, type DecodeResult } from './result.js';
import { decodeFirst, StreamDecoder, type ByteQueue, type Decoded } from './stream.js';

/** `type u32` `length u32` `payload`: the framing of data exchange (§9.3) and task submit (§9.5). */

export const TYPED_FRAME_HEADER_SIZE = 8;
export const TYPED_FRAME_MAX_PAYLOAD = 16777216;

export interface TypedFrame {
  readonly type: number;
  readonly payload: Uint8Array;
}

/** The 8-byte header alone (the reference writes header and payload as two stream writes). */
export function encodeTypedFrameHeader(type: number, length: number): Uint8Array {
  assertU32(type, 'frame type');
  if (!Number.isInteger(length) || length < 0 || length > TYPED_FRAME_MAX_PAYLOAD) {
    throw new RangeError(`frame payload length out of range: ${length}`);
  }
  const buf = Buffer.allocUnsafe(TYPED_FRAME_HEADER_SIZE);
  buf.writeUInt32BE(type, 0);
  buf.writeUInt32BE(length, 4);
  return buf;
}

export function encodeTypedFrame(frame: TypedFrame): Uint8Array {
  const header = encodeTypedFrameHeader(frame.type, frame.payload.length);
  const buf = Buffer.allocUnsafe(TYPED_FRAME_HEADER_SIZE + frame.payload.length);
  buf.set(header, 0);
  buf.set(frame.payload, TYPED_FRAME_HEADER_SIZE);
  return buf;
}

export function typedFrameStep(queue: ByteQueue): DecodeResult<TypedFrame> | null {
  if (queue.length < TYPED_FRAME_HEADER_SIZE) return null;
  const length = queue.readUint32(4);
  if (length > TYPED_FRAME_MAX_PAYLOAD)
    return fail('too_long', `frame length ${length} exceeds ${TYPED_FRAME_MAX_PAYLOAD}`);
  if (queue.length < TYPED_FRAME_HEADER_SIZE + length) return null;
  const type = queue.readUint32(0);
  queue.skip(TYPED_FRAME_HEADER_SIZE);
  return ok({ type, payload: queue.take(length) });
}

export function decodeTypedFrame(bytes: Uint8Array): DecodeResult<Decoded<TypedFrame>> {
  return decodeFirst(typedFrameStep, bytes, 'frame');
}

/** Incremental decoder; a declared length above 16 MiB fails with 'too_long' before any payload is buffered. */
export class TypedFrameDecoder extends StreamDecoder<TypedFrame> {
  constructor() {
    super(typedFrameStep);
  }
}
