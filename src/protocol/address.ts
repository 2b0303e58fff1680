import { fail, ok, type DecodeResult } from './result.js';

/** A 48-bit virtual address: 16-bit network ID and 32-bit node ID (PROTOCOL.md §1.1). */
export interface Addr {
  readonly network: number;
  readonly node: number;
}

/** A virtual address plus a 16-bit port. */
export interface SocketAddr {
  readonly addr: Addr;
  readonly port: number;
}

export const ADDR_SIZE = 6;
export const BROADCAST_NODE = 0xffffffff;

export const ADDR_ZERO: Addr = Object.freeze({ network: 0, node: 0 });
export const ADDR_REGISTRY: Addr = Object.freeze({ network: 0, node: 1 });
export const ADDR_BEACON: Addr = Object.freeze({ network: 0, node: 2 });
export const ADDR_NAMESERVER: Addr = Object.freeze({ network: 0, node: 3 });

export function makeAddr(network: number, node: number): Addr {
  if (!Number.isInteger(network) || network < 0 || network > 0xffff)
    throw new RangeError(`network id out of range: ${network}`);
  if (!Number.isInteger(node) || node < 0 || node > 0xffffffff) throw new RangeError(`node id out of range: ${node}`);
  return { network, node };
}

export function addrEquals(a: Addr, b: Addr): boolean {
  return a.network === b.network && a.node === b.node;
}

export function isBroadcast(a: Addr): boolean {
  return a.node === BROADCAST_NODE;
}

export function isZero(a: Addr): boolean {
  return a.network === 0 && a.node === 0;
}

const hex4 = (n: number): string => n.toString(16).toUpperCase().padStart(4, '0');

/** `N:NNNN.HHHH.LLLL`, upper-case hex. */
export function formatAddr(a: Addr): string {
  return `${a.network}:${hex4(a.network)}.${hex4(a.node >>> 16)}.${hex4(a.node & 0xffff)}`;
}

const DECIMAL = /^[0-9]+$/;
const HEX4 = /^[0-9a-fA-F]{4}$/;

/** Parses the text form with the reference's rules (§1.1). */
export function parseAddr(text: string): DecodeResult<Addr> {
  return parseCanonical(text) ?? parseAddrChecked(text);
}

/** The value of one hex digit's char code, or -1. */
function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  const lower = c | 0x20;
  return lower >= 97 && lower <= 102 ? lower - 87 : -1;
}

/**
 * The usual form (`N:HHHH.HHHH.HHHH`, network in at most 5 digits) read char by char, as every
 * dial by address text does; undefined for anything else, which the checked parser then reads
 * and explains.
 */
function parseCanonical(text: string): DecodeResult<Addr> | undefined {
  let i = 0;
  let network = 0;
  for (; i < text.length && i < 6; i++) {
    const c = text.charCodeAt(i);
    if (c === 58) break;
    if (c < 48 || c > 57) return undefined;
    network = network * 10 + (c - 48);
  }
  if (i === 0 || i > 5 || text.length !== i + 15 || text.charCodeAt(i) !== 58) return undefined;
  if (text.charCodeAt(i + 5) !== 46 || text.charCodeAt(i + 10) !== 46) return undefined;
  const g0 = hex4At(text, i + 1);
  const hi = hex4At(text, i + 6);
  const lo = hex4At(text, i + 11);
  if (network > 0xffff || g0 !== network || hi < 0 || lo < 0) return undefined;
  return ok({ network, node: ((hi << 16) | lo) >>> 0 });
}

/** The four hex digits at `at` as a number, or -1. */
function hex4At(text: string, at: number): number {
  let value = 0;
  for (let k = 0; k < 4; k++) {
    const digit = hexValue(text.charCodeAt(at + k));
    if (digit < 0) return -1;
    value = value * 16 + digit;
  }
  return value;
}

function parseAddrChecked(text: string): DecodeResult<Addr> {
  const colon = text.indexOf(':');
  if (colon < 0) return fail('bad_text', `invalid address "${text}": missing ':'`);
  const netText = text.slice(0, colon);
  const rest = text.slice(colon + 1);
  if (!DECIMAL.test(netText)) return fail('bad_text', `invalid address "${text}": bad network id`);
  const network = Number.parseInt(netText, 10);
  if (network > 0xffff) return fail('bad_text', `invalid address "${text}": network id out of range`);
  const groups = rest.split('.');
  if (groups.length !== 3 || !groups.every((g) => HEX4.test(g))) {
    return fail('bad_text', `invalid address "${text}": expected N:NNNN.HHHH.LLLL`);
  }
  const [g0, g1, g2] = groups.map((g) => Number.parseInt(g, 16)) as [number, number, number];
  if (g0 !== network) return fail('bad_value', `invalid address "${text}": network mismatch`);
  return ok({ network, node: ((g1 << 16) | g2) >>> 0 });
}

export function formatSocketAddr(s: SocketAddr): string {
  return `${formatAddr(s.addr)}:${s.port}`;
}

/** `<addr>:<port>`, split at the last ':'. */
export function parseSocketAddr(text: string): DecodeResult<SocketAddr> {
  const colon = text.lastIndexOf(':');
  if (colon < 0) return fail('bad_text', `invalid socket address "${text}": missing port`);
  const portText = text.slice(colon + 1);
  if (!DECIMAL.test(portText)) return fail('bad_text', `invalid socket address "${text}": bad port`);
  const port = Number.parseInt(portText, 10);
  if (port > 0xffff) return fail('bad_value', `invalid socket address "${text}": port out of range`);
  const addr = parseAddr(text.slice(0, colon));
  if (!addr.ok) return addr;
  return ok({ addr: addr.value, port });
}

export function writeAddr(buf: Uint8Array, offset: number, a: Addr): void {
  // Byte writes, not a DataView: this runs twice for every packet sent.
  buf[offset] = (a.network >>> 8) & 0xff;
  buf[offset + 1] = a.network & 0xff;
  buf[offset + 2] = (a.node >>> 24) & 0xff;
  buf[offset + 3] = (a.node >>> 16) & 0xff;
  buf[offset + 4] = (a.node >>> 8) & 0xff;
  buf[offset + 5] = a.node & 0xff;
}

export function readAddr(buf: Uint8Array, offset: number): Addr {
  const at = (i: number): number => (buf[offset + i] ?? 0) as number;
  return { network: (at(0) << 8) | at(1), node: ((at(2) << 24) | (at(3) << 16) | (at(4) << 8) | at(5)) >>> 0 };
}
