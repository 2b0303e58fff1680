import { HEADER_SIZE, writePacketHeader, type Packet } from './packet.js';
import { fail, ok, type DecodeResult } from './result.js';

/**
 * Plaintext of a PILM frame (a pilot-ts extension, see tunnel.ts): packets back to back, each
 * preceded by its length.
 *
 *   repeated { length u16 BE | marshalled packet (34-byte header with CRC 0, payload) }
 *
 * At least one packet; no trailing bytes. The receiver decodes each packet as it would the
 * plaintext of a PILS frame.
 */

/** Largest payload of a packet in a batch: its length prefix (header + payload) is a u16. */
export const MAX_BATCHED_PAYLOAD = 0xffff - HEADER_SIZE;

/** Bytes a packet takes inside a batch. */
export function batchedSize(p: Packet): number {
  return 2 + HEADER_SIZE + p.payload.length;
}

/** Whether a packet can travel in a batch at all (a larger one can only be sent alone, as PILS). */
export function isBatchable(p: Packet): boolean {
  return p.payload.length <= MAX_BATCHED_PAYLOAD;
}

function checkBatchable(p: Packet): void {
  if (!isBatchable(p))
    throw new RangeError(
      `packet payload of ${p.payload.length} bytes exceeds the batch maximum of ${MAX_BATCHED_PAYLOAD}`,
    );
}

/** Marshals packets into one batch body (a single buffer, ready to seal in one pass). Throws RangeError for an unbatchable packet. */
export function encodePacketBatch(packets: readonly Packet[]): Buffer {
  if (packets.length === 0) throw new RangeError('empty packet batch');
  let total = 0;
  for (const p of packets) {
    checkBatchable(p);
    total += batchedSize(p);
  }
  const buf = Buffer.allocUnsafe(total);
  let at = 0;
  for (const p of packets) {
    buf.writeUInt16BE(HEADER_SIZE + p.payload.length, at);
    writePacketHeader(buf, at + 2, p, false);
    buf.set(p.payload, at + 2 + HEADER_SIZE);
    at += batchedSize(p);
  }
  return buf;
}

/**
 * The length prefix and header of one packet in a batch: a batch of one is sealed as these 36
 * bytes and the payload, without copying the payload. Throws RangeError for an unbatchable packet.
 */
export function encodeBatchedHeader(p: Packet): Buffer {
  checkBatchable(p);
  const buf = Buffer.allocUnsafe(2 + HEADER_SIZE);
  buf.writeUInt16BE(HEADER_SIZE + p.payload.length, 0);
  writePacketHeader(buf, 2, p, false);
  return buf;
}

/** Splits a batch body into packet views (no copies); every length is checked against the body. */
export function decodePacketBatch(body: Uint8Array): DecodeResult<Uint8Array[]> {
  if (body.length === 0) return fail('truncated', 'empty packet batch');
  const packets: Uint8Array[] = [];
  let at = 0;
  while (at < body.length) {
    if (body.length - at < 2) return fail('truncated', `packet batch: length cut at byte ${at}`);
    const length = ((body[at] as number) << 8) | (body[at + 1] as number);
    if (length < HEADER_SIZE) return fail('bad_value', `packet batch: packet of ${length} bytes`);
    if (body.length - at - 2 < length)
      return fail('truncated', `packet batch: packet of ${length} bytes cut at byte ${at}`);
    packets.push(body.subarray(at + 2, at + 2 + length));
    at += 2 + length;
  }
  return ok(packets);
}
