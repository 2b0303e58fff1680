import { fail, ok, type DecodeResult } from './result.js';

/**
 * Capability advert, a pilot-ts extension: a Control packet (proto 3) to port 1 (`PortControl`,
 * which nothing serves in the reference; a Go daemon ignores Control packets to ports other
 * than 0). It tells the peer the largest stream segment this node accepts, whether it reads
 * PILM frames (several packets sealed in one datagram), and whether it takes data in a SYN.
 *
 *   magic "PCAP" | version u8 (1) | flags u8 | max segment u16 BE
 *   flags: bit 0 please answer with yours, bit 1 PILM frames accepted, bit 2 data in a SYN
 *          taken as the stream's first bytes; other bits ignored
 *
 * Longer payloads are accepted (later versions may append fields); shorter ones are refused.
 */
export interface CapsAdvert {
  /** The sender wants the receiver's advert in return. */
  readonly request: boolean;
  /** Largest stream payload, in bytes, the sender accepts in one segment. */
  readonly maxSegment: number;
  /** The sender reads PILM frames. */
  readonly batch: boolean;
  /** The sender takes a SYN's payload as the stream's first bytes (an open costs no extra round trip). */
  readonly synData: boolean;
}

export const CAPS_LENGTH = 8;
const MAGIC = [0x50, 0x43, 0x41, 0x50];
const VERSION = 1;
const FLAG_REQUEST = 0x01;
const FLAG_BATCH = 0x02;
const FLAG_SYN_DATA = 0x04;
/** Every implementation accepts segments of this size, so an advert below it is meaningless. */
export const BASE_SEGMENT = 4096;

export function encodeCaps(advert: CapsAdvert): Uint8Array {
  if (!Number.isInteger(advert.maxSegment) || advert.maxSegment < BASE_SEGMENT || advert.maxSegment > 0xffff) {
    throw new RangeError(`maxSegment out of range: ${advert.maxSegment}`);
  }
  const out = new Uint8Array(CAPS_LENGTH);
  out.set(MAGIC, 0);
  out[4] = VERSION;
  out[5] = (advert.request ? FLAG_REQUEST : 0) | (advert.batch ? FLAG_BATCH : 0) | (advert.synData ? FLAG_SYN_DATA : 0);
  out[6] = advert.maxSegment >>> 8;
  out[7] = advert.maxSegment & 0xff;
  return out;
}

export function decodeCaps(bytes: Uint8Array): DecodeResult<CapsAdvert> {
  if (bytes.length < CAPS_LENGTH) return fail('truncated', `capability advert of ${bytes.length} bytes`);
  for (let i = 0; i < MAGIC.length; i++) if (bytes[i] !== MAGIC[i]) return fail('bad_magic', 'not a capability advert');
  if (bytes[4] !== VERSION) return fail('bad_value', `capability advert version ${bytes[4]}`);
  const maxSegment = ((bytes[6] as number) << 8) | (bytes[7] as number);
  if (maxSegment < BASE_SEGMENT) return fail('bad_value', `max segment ${maxSegment} below ${BASE_SEGMENT}`);
  const flags = bytes[5] as number;
  return ok({
    request: (flags & FLAG_REQUEST) !== 0,
    maxSegment,
    batch: (flags & FLAG_BATCH) !== 0,
    synData: (flags & FLAG_SYN_DATA) !== 0,
  });
}
