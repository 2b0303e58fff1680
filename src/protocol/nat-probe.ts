/**
 * NAT behaviour probes (pilot-ts extension of the beacon protocol, types a Go beacon ignores):
 *
 * - NatProbe (0x0c, daemon → beacon): `token u32`. The beacon answers from the socket it arrived on
 *   and, when it arrived on the beacon's main socket, also from its other port and from its other
 *   address (when it has them), so the daemon learns how its NAT filters.
 * - NatProbeReply (0x0d, beacon → daemon): `token u32` `source u8` (0 main socket, 1 other port,
 *   2 other address) `iplen u8` `ip` `port u16` (the source the beacon observed), then the beacon's
 *   other sockets: `iplen u8` `ip` `port u16` twice (iplen 0: none). Probing those as well tells
 *   whether the NAT maps per destination.
 */
import { asBuffer, assertU16, assertU32 } from './bytes.js';
import { formatIpBytes, parseIpBytes } from './ip.js';
import { fail, ok, type DecodeResult } from './result.js';

export const NAT_PROBE = 0x0c;
export const NAT_PROBE_REPLY = 0x0d;

export type NatProbeSource = 0 | 1 | 2;

export interface NatProbeEndpoint {
  readonly ip: string;
  readonly port: number;
}

export interface NatProbeReply {
  readonly token: number;
  readonly source: NatProbeSource;
  readonly observed: NatProbeEndpoint;
  readonly otherPort: NatProbeEndpoint | undefined;
  readonly otherAddress: NatProbeEndpoint | undefined;
}

export function encodeNatProbe(token: number): Uint8Array {
  assertU32(token, 'token');
  const buf = Buffer.alloc(5);
  buf[0] = NAT_PROBE;
  buf.writeUInt32BE(token, 1);
  return buf;
}

export function decodeNatProbe(bytes: Uint8Array): DecodeResult<number> {
  const buf = asBuffer(bytes);
  if (buf.length < 5) return fail('truncated', 'NatProbe too short');
  if (buf[0] !== NAT_PROBE) return fail('bad_magic', 'not a NatProbe');
  return ok(buf.readUInt32BE(1));
}

function endpointBytes(ep: NatProbeEndpoint | undefined): Buffer {
  if (!ep) return Buffer.of(0);
  assertU16(ep.port, 'port');
  const ip = parseIpBytes(ep.ip);
  const buf = Buffer.alloc(1 + ip.length + 2);
  buf[0] = ip.length;
  buf.set(ip, 1);
  buf.writeUInt16BE(ep.port, 1 + ip.length);
  return buf;
}

export function encodeNatProbeReply(r: NatProbeReply): Uint8Array {
  assertU32(r.token, 'token');
  const head = Buffer.alloc(6);
  head[0] = NAT_PROBE_REPLY;
  head.writeUInt32BE(r.token, 1);
  head[5] = r.source;
  return Buffer.concat([head, endpointBytes(r.observed), endpointBytes(r.otherPort), endpointBytes(r.otherAddress)]);
}

function readEndpoint(buf: Buffer, at: number): DecodeResult<{ ep: NatProbeEndpoint | undefined; next: number }> {
  if (buf.length < at + 1) return fail('truncated', 'NatProbeReply truncated');
  const len = buf[at] as number;
  if (len === 0) return ok({ ep: undefined, next: at + 1 });
  if (len !== 4 && len !== 16) return fail('bad_value', `NatProbeReply: bad IP length ${len}`);
  if (buf.length < at + 1 + len + 2) return fail('truncated', 'NatProbeReply truncated');
  return ok({
    ep: { ip: formatIpBytes(buf.subarray(at + 1, at + 1 + len)), port: buf.readUInt16BE(at + 1 + len) },
    next: at + 3 + len,
  });
}

export function decodeNatProbeReply(bytes: Uint8Array): DecodeResult<NatProbeReply> {
  const buf = asBuffer(bytes);
  if (buf.length < 6) return fail('truncated', 'NatProbeReply too short');
  if (buf[0] !== NAT_PROBE_REPLY) return fail('bad_magic', 'not a NatProbeReply');
  const source = buf[5] as number;
  if (source > 2) return fail('bad_value', `NatProbeReply: bad source ${source}`);
  const observed = readEndpoint(buf, 6);
  if (!observed.ok) return observed;
  if (!observed.value.ep) return fail('bad_value', 'NatProbeReply without an observed endpoint');
  const otherPort = readEndpoint(buf, observed.value.next);
  if (!otherPort.ok) return otherPort;
  const otherAddress = readEndpoint(buf, otherPort.value.next);
  if (!otherAddress.ok) return otherAddress;
  return ok({
    token: buf.readUInt32BE(1),
    source: source as NatProbeSource,
    observed: observed.value.ep,
    otherPort: otherPort.value.ep,
    otherAddress: otherAddress.value.ep,
  });
}

/** NAT behaviour as RFC 4787 names it, and the classic name of the combination. */
export type NatMapping = 'none' | 'endpoint-independent' | 'endpoint-dependent' | 'unknown';
export type NatFiltering =
  | 'none'
  | 'endpoint-independent'
  | 'address-dependent'
  | 'address-and-port-dependent'
  | 'unknown';
export type NatType = 'none' | 'full-cone' | 'restricted-cone' | 'port-restricted-cone' | 'symmetric' | 'unknown';

export function natType(mapping: NatMapping, filtering: NatFiltering): NatType {
  if (mapping === 'none') return 'none';
  if (mapping === 'endpoint-dependent') return 'symmetric';
  if (mapping === 'unknown') return 'unknown';
  if (filtering === 'endpoint-independent') return 'full-cone';
  if (filtering === 'address-dependent') return 'restricted-cone';
  if (filtering === 'address-and-port-dependent') return 'port-restricted-cone';
  return 'unknown';
}
