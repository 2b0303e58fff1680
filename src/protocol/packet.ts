import { crc32 } from 'node:zlib';
import { readAddr, writeAddr, type Addr } from './address.js';
import { fail, ok, type DecodeResult } from './result.js';

/** Packet header size in bytes (PROTOCOL.md §2.1). */
export const HEADER_SIZE = 34;
export const MAX_PAYLOAD = 0xffff;
export const PROTOCOL_VERSION = 1;

export const Flag = { SYN: 0x1, ACK: 0x2, FIN: 0x4, RST: 0x8 } as const;

export const Proto = { Stream: 0x01, Datagram: 0x02, Control: 0x03 } as const;

export interface Packet {
  /** Version nibble; senders write 1, receivers accept any value (§2.5). */
  readonly version: number;
  /** Low nibble: SYN|ACK|FIN|RST. */
  readonly flags: number;
  readonly protocol: number;
  readonly src: Addr;
  readonly dst: Addr;
  readonly srcPort: number;
  readonly dstPort: number;
  readonly seq: number;
  readonly ack: number;
  /** Receive window in 4096-byte segments; 0 means "no limit" to a Go sender (§2.6). */
  readonly window: number;
  readonly payload: Uint8Array;
}

export type PacketFields = Omit<Packet, 'version' | 'payload'> & { version?: number; payload?: Uint8Array };

export function makePacket(f: PacketFields): Packet {
  // Listed field by field, not spread: this runs for every packet, and a spread is several times slower.
  return {
    version: f.version ?? PROTOCOL_VERSION,
    flags: f.flags,
    protocol: f.protocol,
    src: f.src,
    dst: f.dst,
    srcPort: f.srcPort,
    dstPort: f.dstPort,
    seq: f.seq,
    ack: f.ack,
    window: f.window,
    payload: f.payload ?? EMPTY,
  };
}

const EMPTY = new Uint8Array(0);

/**
 * The packet with a payload of its own, for handing a packet to another stack in-process as a
 * wire would: a sent payload may view a send block that is reused once acknowledged.
 */
export function detachPayload(p: Packet): Packet {
  return p.payload.length > 0 ? { ...p, payload: Buffer.from(p.payload) } : p;
}

export function hasFlag(p: Packet, flag: number): boolean {
  return (p.flags & flag) !== 0;
}

/** Marshals a packet and fills in its CRC-32 (§2.4). */
export function encodePacket(p: Packet): Uint8Array {
  return Buffer.concat([encodePacketHeader(p), p.payload]);
}

/**
 * The 34-byte header of a packet with the CRC-32 over header and payload filled in; the payload
 * itself is not copied (the tunnel encrypts header and payload as two pieces).
 */
export function encodePacketHeader(p: Packet): Buffer {
  const buf = Buffer.allocUnsafe(HEADER_SIZE);
  writePacketHeader(buf, 0, p, true);
  return buf;
}

/**
 * Writes the 34-byte header of `p` at `offset`. Without `checksum` the CRC field stays zero: only
 * for packets sealed in a PILM frame, whose AEAD authenticates them and whose receiver (pilot-ts)
 * does not check the CRC.
 */
export function writePacketHeader(buf: Buffer, offset: number, p: Packet, checksum: boolean): void {
  if (p.payload.length > MAX_PAYLOAD) throw new RangeError(`payload too large: ${p.payload.length}`);
  buf[offset] = ((p.version & 0x0f) << 4) | (p.flags & 0x0f);
  buf[offset + 1] = p.protocol & 0xff;
  buf.writeUInt16BE(p.payload.length, offset + 2);
  writeAddr(buf, offset + 4, p.src);
  writeAddr(buf, offset + 10, p.dst);
  buf.writeUInt16BE(p.srcPort, offset + 16);
  buf.writeUInt16BE(p.dstPort, offset + 18);
  buf.writeUInt32BE(p.seq >>> 0, offset + 20);
  buf.writeUInt32BE(p.ack >>> 0, offset + 24);
  buf.writeUInt16BE(p.window, offset + 28);
  buf.writeUInt32BE(0, offset + 30);
  if (checksum) buf.writeUInt32BE(crc32(p.payload, crc32(buf.subarray(offset, offset + HEADER_SIZE))), offset + 30);
}

/**
 * Unmarshals a packet; trailing bytes beyond the declared payload are ignored (§2.4). The payload
 * is a view of `bytes` (no copy per segment): do not reuse the input buffer while it is alive.
 * `verifyChecksum: false` skips the CRC-32 for bytes an AEAD has already authenticated.
 */
export function decodePacket(bytes: Uint8Array, options: { verifyChecksum?: boolean } = {}): DecodeResult<Packet> {
  if (bytes.length < HEADER_SIZE) return fail('truncated', `packet too short: ${bytes.length} bytes`);
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const length = buf.readUInt16BE(2);
  if (buf.length < HEADER_SIZE + length)
    return fail('truncated', `payload truncated: want ${length}, have ${buf.length - HEADER_SIZE}`);
  if (options.verifyChecksum !== false) {
    const stored = buf.readUInt32BE(30);
    const header = Buffer.from(buf.subarray(0, HEADER_SIZE));
    header.writeUInt32BE(0, 30);
    const computed = crc32(buf.subarray(HEADER_SIZE, HEADER_SIZE + length), crc32(header));
    if (computed !== stored) return fail('bad_checksum', 'checksum mismatch');
  }
  const b0 = buf[0] as number;
  return ok({
    version: b0 >> 4,
    flags: b0 & 0x0f,
    protocol: buf[1] as number,
    src: readAddr(buf, 4),
    dst: readAddr(buf, 10),
    srcPort: buf.readUInt16BE(16),
    dstPort: buf.readUInt16BE(18),
    seq: buf.readUInt32BE(20),
    ack: buf.readUInt32BE(24),
    window: buf.readUInt16BE(28),
    payload: buf.subarray(HEADER_SIZE, HEADER_SIZE + length),
  });
}
