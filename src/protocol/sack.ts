/** SACK blocks carried as the payload of a pure ACK (PROTOCOL.md §2.7). */
export interface SackBlock {
  /** Sequence number of the first byte held. */
  readonly left: number;
  /** Sequence number of the first byte after the block. */
  readonly right: number;
}

export const SACK_MAGIC = Uint8Array.of(0x53, 0x41, 0x43, 0x4b);
export const MAX_SACK_BLOCKS = 4;

export function encodeSack(blocks: readonly SackBlock[]): Uint8Array {
  if (blocks.length < 1 || blocks.length > MAX_SACK_BLOCKS)
    throw new RangeError(`SACK needs 1..4 blocks, got ${blocks.length}`);
  const buf = Buffer.allocUnsafe(5 + 8 * blocks.length);
  buf.set(SACK_MAGIC, 0);
  buf[4] = blocks.length;
  blocks.forEach((b, i) => {
    buf.writeUInt32BE(b.left >>> 0, 5 + 8 * i);
    buf.writeUInt32BE(b.right >>> 0, 9 + 8 * i);
  });
  return buf;
}

/**
 * Returns the SACK blocks if the payload is SACK information by the receiver's rule
 * (magic, count 1..4, enough bytes), or null if the payload is application data.
 */
export function decodeSack(payload: Uint8Array): SackBlock[] | null {
  if (!looksLikeSack(payload)) return null;
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const count = payload[4] as number;
  const blocks: SackBlock[] = [];
  for (let i = 0; i < count; i++) {
    blocks.push({ left: view.getUint32(5 + 8 * i), right: view.getUint32(9 + 8 * i) });
  }
  return blocks;
}

/** True when a Go receiver would take these bytes (at the start of a segment) for SACK information. */
export function looksLikeSack(bytes: Uint8Array): boolean {
  if (bytes.length < 5) return false;
  if (bytes[0] !== 0x53 || bytes[1] !== 0x41 || bytes[2] !== 0x43 || bytes[3] !== 0x4b) return false;
  const count = bytes[4] as number;
  return count >= 1 && count <= MAX_SACK_BLOCKS && bytes.length >= 5 + 8 * count;
}
