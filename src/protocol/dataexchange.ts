import { asBuffer, utf8Decode, utf8Encode } from './bytes.js';
import { Port } from './ports.js';
import type { DecodeResult } from './result.js';
import type { Decoded } from './stream.js';
import {
  decodeTypedFrame,
  encodeTypedFrame,
  TYPED_FRAME_MAX_PAYLOAD,
  TypedFrameDecoder,
  type TypedFrame,
} from './typed-frame.js';

/** Data exchange frames on port 1001 (PROTOCOL.md §9.3). */

export const DATA_EXCHANGE_PORT = Port.DataExchange;

/**
 * Frame type carrying the idempotency key (a UUID, ASCII) of the frame that follows it on the same
 * connection. Only pilot-ts nodes interpret it: a Go daemon treats it as `UNKNOWN(n)`, stores
 * nothing and answers it with an ACK like any other frame, so a sender always reads one reply per
 * frame either way. The key is kept out of the message itself so that its content is unchanged.
 */
export const IDEMPOTENCY_KEY_TYPE = 0x70740001;
export const MAX_KEY_BYTES = 64;

export const DATA_MAX_PAYLOAD = TYPED_FRAME_MAX_PAYLOAD;

export const DataType = { Text: 1, Binary: 2, Json: 3, File: 4 } as const;

export type DataFrame = TypedFrame;

/** `TEXT`, `BINARY`, `JSON`, `FILE`, or `UNKNOWN(n)` for any other type value. */
export function dataTypeName(type: number): string {
  switch (type) {
    case DataType.Text:
      return 'TEXT';
    case DataType.Binary:
      return 'BINARY';
    case DataType.Json:
      return 'JSON';
    case DataType.File:
      return 'FILE';
    default:
      return `UNKNOWN(${type})`;
  }
}

/** Header + payload. Throws RangeError for a type outside u32 or a payload above 16 MiB. */
export function encodeDataFrame(frame: DataFrame): Uint8Array {
  return encodeTypedFrame(frame);
}

export function decodeDataFrame(bytes: Uint8Array): DecodeResult<Decoded<DataFrame>> {
  return decodeTypedFrame(bytes);
}

/** Incremental decoder; a declared length above 16 MiB fails with 'too_long' before buffering. */
export class DataFrameDecoder extends TypedFrameDecoder {}

export interface FilePayload {
  /** Empty when the payload carried no usable name header. */
  readonly name: string;
  readonly data: Uint8Array;
}

/** `name_len u16` `name` `data`. Throws RangeError if the UTF-8 name exceeds 65535 bytes. */
export function encodeFilePayload(file: FilePayload): Uint8Array {
  const name = utf8Encode(file.name);
  if (name.length > 0xffff) throw new RangeError(`file name too long: ${name.length} bytes`);
  const buf = Buffer.allocUnsafe(2 + name.length + file.data.length);
  buf.writeUInt16BE(name.length, 0);
  buf.set(name, 2);
  buf.set(file.data, 2 + name.length);
  return buf;
}

/**
 * Never fails: a payload shorter than 2 bytes, or whose name length overruns it, is kept whole
 * as data with an empty name (the reference's rule).
 */
export function decodeFilePayload(payload: Uint8Array): FilePayload {
  const buf = asBuffer(payload);
  if (buf.length < 2) return { name: '', data: Buffer.from(buf) };
  const nameLen = buf.readUInt16BE(0);
  if (nameLen + 2 > buf.length) return { name: '', data: Buffer.from(buf) };
  return { name: utf8Decode(buf.subarray(2, 2 + nameLen)), data: Buffer.from(buf.subarray(2 + nameLen)) };
}

/** Convenience: a complete FILE frame. */
export function encodeFileFrame(file: FilePayload): Uint8Array {
  return encodeDataFrame({ type: DataType.File, payload: encodeFilePayload(file) });
}

/** Convenience: a complete TEXT frame. */
export function encodeTextFrame(text: string): Uint8Array {
  return encodeDataFrame({ type: DataType.Text, payload: utf8Encode(text) });
}

/** True for the service's positive reply `ACK <TYPE> <n> bytes`. */
export function isAck(reply: string): boolean {
  return reply.startsWith('ACK ');
}

export function ackText(type: number, bytes: number): string {
  return `ACK ${dataTypeName(type)} ${bytes} bytes`;
}

export function errText(type: number, reason: string): string {
  return `ERR ${dataTypeName(type)} ${reason}`;
}
