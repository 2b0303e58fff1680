/** Small helpers shared by the codecs: integer range checks and UTF-8 text. */

const encoder = new TextEncoder();
// Lossy like Go's string(bytes) followed by JSON/fmt output: invalid sequences become U+FFFD.
// ignoreBOM keeps a leading U+FEFF so that JSON.parse rejects it, as Go does.
const decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

export function utf8Encode(text: string): Buffer {
  const bytes = encoder.encode(text);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export function utf8Decode(bytes: Uint8Array): string {
  return decoder.decode(bytes);
}

export function isUint(n: number, bits: 8 | 16 | 32): boolean {
  return Number.isInteger(n) && n >= 0 && n <= 2 ** bits - 1;
}

export function assertU8(n: number, what: string): void {
  if (!isUint(n, 8)) throw new RangeError(`${what} is not a u8: ${n}`);
}

export function assertU16(n: number, what: string): void {
  if (!isUint(n, 16)) throw new RangeError(`${what} is not a u16: ${n}`);
}

export function assertU32(n: number, what: string): void {
  if (!isUint(n, 32)) throw new RangeError(`${what} is not a u32: ${n}`);
}

export function assertLength(bytes: Uint8Array, length: number, what: string): void {
  if (bytes.length !== length) throw new RangeError(`${what} must be ${length} bytes, got ${bytes.length}`);
}

/** A fresh Buffer view of any Uint8Array (no copy). */
export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** An independent copy of part of a byte array. */
export function copyBytes(bytes: Uint8Array, start: number, end: number): Buffer {
  return Buffer.from(bytes.subarray(start, end));
}
