import { asBuffer, assertLength, assertU32, copyBytes } from './bytes.js';
import { HEADER_SIZE } from './packet.js';
import { fail, ok, type DecodeResult } from './result.js';

/** UDP tunnel frames (PROTOCOL.md §3.1, §3.2). */

export const MAGIC_PILA = Uint8Array.of(0x50, 0x49, 0x4c, 0x41);
export const MAGIC_PILK = Uint8Array.of(0x50, 0x49, 0x4c, 0x4b);
export const MAGIC_PILS = Uint8Array.of(0x50, 0x49, 0x4c, 0x53);

/**
 * Path probes (pilot-ts extension): a PILS whose plaintext is this one byte. No packet is shorter
 * than its 34-byte header, so a Go peer drops one after decrypting it. A relayed peer's direct path
 * is probed with a request, which a pilot-ts peer answers straight back: being sealed with a fresh
 * counter, neither can be forged or replayed.
 */
export const PATH_PROBE_REQUEST = 0x01;
export const PATH_PROBE_REPLY = 0x02;
export const MAGIC_PILP = Uint8Array.of(0x50, 0x49, 0x4c, 0x50);
export const MAGIC_PILT = Uint8Array.of(0x50, 0x49, 0x4c, 0x54);
/** pilot-ts extension: several packets sealed as one frame, sent only to peers that advertise it. */
export const MAGIC_PILM = Uint8Array.of(0x50, 0x49, 0x4c, 0x4d);

export const NONCE_SIZE = 12;
export const GCM_TAG_SIZE = 16;
export const X25519_KEY_SIZE = 32;
export const ED25519_KEY_SIZE = 32;
export const ED25519_SIG_SIZE = 64;

export const PILT_MIN_SIZE = 4 + HEADER_SIZE;
export const PILS_MIN_SIZE = 4 + 4 + NONCE_SIZE + GCM_TAG_SIZE;
export const PILK_SIZE = 4 + 4 + X25519_KEY_SIZE;
export const PILA_SIZE = 4 + 4 + X25519_KEY_SIZE + ED25519_KEY_SIZE + ED25519_SIG_SIZE;
export const PILA_SIGNED_SIZE = 4 + 4 + X25519_KEY_SIZE;
/** Largest datagram the reference reads: 65535 + 38 (§3.1). */
export const TUNNEL_RECV_BUFFER = 65573;

/** Largest UDP payload over IPv4: 65535 − 20 (IP header) − 8 (UDP header). */
export const MAX_UDP_PAYLOAD_IPV4 = 65507;
/** Largest UDP payload over IPv6 without jumbograms: 65535 − 8 (the IPv6 header is not counted). */
export const MAX_UDP_PAYLOAD_IPV6 = 65527;
/** What a PILS frame adds to a packet's payload: magic, sender, nonce, 34-byte header, GCM tag. */
export const PILS_OVERHEAD = PILS_MIN_SIZE + HEADER_SIZE;
/** What beacon Relay (0x05) adds to a frame on its way to the beacon: type, sender, destination (§4). */
export const RELAY_OVERHEAD = 9;

/**
 * Largest datagram payload (proto 0x02) that reaches a peer whatever the path, so the most a
 * daemon accepts to send: 65507 − 9 − 70 = 65428 bytes. The binding case is an encrypted packet
 * relayed through the beacon over IPv4. Directly over IPv4 the limits are 65437 (PILS), 65435
 * (PILM, 2 more bytes of batch length) and 65469 (PILT, encryption off); over IPv6, 20 bytes more.
 * The packet header's u16 length would allow 65535; anything past the UDP limit cannot be sent.
 */
export const MAX_DATAGRAM_PAYLOAD = MAX_UDP_PAYLOAD_IPV4 - RELAY_OVERHEAD - PILS_OVERHEAD;

export type DatagramKind = 'beacon' | 'PILA' | 'PILK' | 'PILS' | 'PILM' | 'PILP' | 'PILT' | 'unknown';

/** Demultiplexes an incoming UDP datagram by its first bytes (§3.1). */
export function classifyDatagram(bytes: Uint8Array): DatagramKind {
  if (bytes.length === 0) return 'unknown';
  if ((bytes[0] as number) < 0x10) return 'beacon';
  if (bytes.length < 4 || bytes[0] !== 0x50 || bytes[1] !== 0x49 || bytes[2] !== 0x4c) return 'unknown';
  switch (bytes[3]) {
    case 0x41:
      return 'PILA';
    case 0x4b:
      return 'PILK';
    case 0x53:
      return 'PILS';
    case 0x4d:
      return 'PILM';
    case 0x50:
      return 'PILP';
    case 0x54:
      return 'PILT';
    default:
      return 'unknown';
  }
}

function hasMagic(bytes: Uint8Array, magic: Uint8Array): boolean {
  return (
    bytes.length >= 4 &&
    bytes[0] === magic[0] &&
    bytes[1] === magic[1] &&
    bytes[2] === magic[2] &&
    bytes[3] === magic[3]
  );
}

function checkFrame(bytes: Uint8Array, magic: Uint8Array, min: number, name: string): DecodeResult<Buffer> {
  if (bytes.length < 4) return fail('truncated', `${name} frame too short: ${bytes.length} bytes`);
  if (!hasMagic(bytes, magic)) return fail('bad_magic', `not a ${name} frame`);
  if (bytes.length < min) return fail('truncated', `${name} frame too short: ${bytes.length} bytes, need ${min}`);
  return ok(asBuffer(bytes));
}

/** PILT: plaintext packet. */
export interface PiltFrame {
  /** The marshalled packet (§2), not yet checked. */
  readonly packet: Uint8Array;
}

export function encodePilt(packet: Uint8Array): Uint8Array {
  if (packet.length < HEADER_SIZE) throw new RangeError(`packet too short for PILT: ${packet.length} bytes`);
  const buf = Buffer.allocUnsafe(4 + packet.length);
  buf.set(MAGIC_PILT, 0);
  buf.set(packet, 4);
  return buf;
}

export function decodePilt(bytes: Uint8Array): DecodeResult<PiltFrame> {
  const checked = checkFrame(bytes, MAGIC_PILT, PILT_MIN_SIZE, 'PILT');
  if (!checked.ok) return checked;
  return ok({ packet: copyBytes(bytes, 4, bytes.length) });
}

/** PILS: AES-256-GCM sealed packet. */
export interface PilsFrame {
  readonly senderNode: number;
  readonly nonce: Uint8Array;
  /** Ciphertext followed by the 16-byte tag. */
  readonly sealed: Uint8Array;
}

export function encodePils(frame: PilsFrame): Uint8Array {
  if (frame.sealed.length < GCM_TAG_SIZE)
    throw new RangeError(`sealed data shorter than the tag: ${frame.sealed.length}`);
  return Buffer.concat([encodePilsHeader(frame.senderNode, frame.nonce), frame.sealed]);
}

/** The 20 bytes before the ciphertext of a PILS frame: magic, sender node, nonce. */
export function encodePilsHeader(senderNode: number, nonce: Uint8Array): Buffer {
  return sealedHeader(MAGIC_PILS, senderNode, nonce);
}

/** Nonce and sealed data are views of `bytes` (a received datagram is never reused). */
export function decodePils(bytes: Uint8Array): DecodeResult<PilsFrame> {
  return decodeSealed(bytes, MAGIC_PILS, 'PILS');
}

/**
 * PILM: the PILS layout with another magic; the plaintext is a packet batch (packet-batch.ts)
 * and the magic is authenticated as AES-GCM additional data, so neither kind passes as the other.
 */
export function encodePilmHeader(senderNode: number, nonce: Uint8Array): Buffer {
  return sealedHeader(MAGIC_PILM, senderNode, nonce);
}

export function decodePilm(bytes: Uint8Array): DecodeResult<PilsFrame> {
  return decodeSealed(bytes, MAGIC_PILM, 'PILM');
}

function sealedHeader(magic: Uint8Array, senderNode: number, nonce: Uint8Array): Buffer {
  assertU32(senderNode, 'sender node');
  assertLength(nonce, NONCE_SIZE, 'nonce');
  const buf = Buffer.allocUnsafe(8 + NONCE_SIZE);
  buf.set(magic, 0);
  buf.writeUInt32BE(senderNode, 4);
  buf.set(nonce, 8);
  return buf;
}

function decodeSealed(bytes: Uint8Array, magic: Uint8Array, name: string): DecodeResult<PilsFrame> {
  const checked = checkFrame(bytes, magic, PILS_MIN_SIZE, name);
  if (!checked.ok) return checked;
  const buf = checked.value;
  return ok({
    senderNode: buf.readUInt32BE(4),
    nonce: buf.subarray(8, 8 + NONCE_SIZE),
    sealed: buf.subarray(8 + NONCE_SIZE),
  });
}

/** PILK: anonymous key exchange. */
export interface PilkFrame {
  readonly senderNode: number;
  readonly x25519Public: Uint8Array;
}

export function encodePilk(frame: PilkFrame): Uint8Array {
  assertU32(frame.senderNode, 'sender node');
  assertLength(frame.x25519Public, X25519_KEY_SIZE, 'X25519 public key');
  const buf = Buffer.allocUnsafe(PILK_SIZE);
  buf.set(MAGIC_PILK, 0);
  buf.writeUInt32BE(frame.senderNode, 4);
  buf.set(frame.x25519Public, 8);
  return buf;
}

/** Bytes after the 40-byte frame are ignored, as by the reference receiver. */
export function decodePilk(bytes: Uint8Array): DecodeResult<PilkFrame> {
  const checked = checkFrame(bytes, MAGIC_PILK, PILK_SIZE, 'PILK');
  if (!checked.ok) return checked;
  const buf = checked.value;
  return ok({ senderNode: buf.readUInt32BE(4), x25519Public: copyBytes(buf, 8, 8 + X25519_KEY_SIZE) });
}

/** PILA: authenticated key exchange. */
export interface PilaFrame {
  readonly senderNode: number;
  readonly x25519Public: Uint8Array;
  readonly ed25519Public: Uint8Array;
  /** Ed25519 signature over pilaSignedMessage(senderNode, x25519Public). */
  readonly signature: Uint8Array;
}

export function encodePila(frame: PilaFrame): Uint8Array {
  assertU32(frame.senderNode, 'sender node');
  assertLength(frame.x25519Public, X25519_KEY_SIZE, 'X25519 public key');
  assertLength(frame.ed25519Public, ED25519_KEY_SIZE, 'Ed25519 public key');
  assertLength(frame.signature, ED25519_SIG_SIZE, 'signature');
  const buf = Buffer.allocUnsafe(PILA_SIZE);
  buf.set(MAGIC_PILA, 0);
  buf.writeUInt32BE(frame.senderNode, 4);
  buf.set(frame.x25519Public, 8);
  buf.set(frame.ed25519Public, 40);
  buf.set(frame.signature, 72);
  return buf;
}

/** Bytes after the 136-byte frame are ignored, as by the reference receiver. */
export function decodePila(bytes: Uint8Array): DecodeResult<PilaFrame> {
  const checked = checkFrame(bytes, MAGIC_PILA, PILA_SIZE, 'PILA');
  if (!checked.ok) return checked;
  const buf = checked.value;
  return ok({
    senderNode: buf.readUInt32BE(4),
    x25519Public: copyBytes(buf, 8, 40),
    ed25519Public: copyBytes(buf, 40, 72),
    signature: copyBytes(buf, 72, 136),
  });
}

/** The 40 bytes a PILA signature covers: ASCII `auth` (no colon) ‖ node u32 ‖ X25519 public key. */
export function pilaSignedMessage(senderNode: number, x25519Public: Uint8Array): Uint8Array {
  assertU32(senderNode, 'sender node');
  assertLength(x25519Public, X25519_KEY_SIZE, 'X25519 public key');
  const buf = Buffer.allocUnsafe(PILA_SIGNED_SIZE);
  buf.write('auth', 0, 'latin1');
  buf.writeUInt32BE(senderNode, 4);
  buf.set(x25519Public, 8);
  return buf;
}

/** PILP: NAT punch. The reference sends exactly the magic; anything after it is ignored. */
export function encodePilp(): Uint8Array {
  return Buffer.from(MAGIC_PILP);
}

export function decodePilp(bytes: Uint8Array): DecodeResult<true> {
  const checked = checkFrame(bytes, MAGIC_PILP, 4, 'PILP');
  if (!checked.ok) return checked;
  return ok(true);
}
