import { asBuffer, assertU16, assertU32, copyBytes } from './bytes.js';
import { formatIpBytes, parseIpBytes } from './ip.js';
import { fail, ok, type DecodeResult } from './result.js';

/** Beacon messages (PROTOCOL.md §4): one UDP datagram each, byte 0 is the type. */

export const BeaconType = {
  Discover: 0x01,
  DiscoverReply: 0x02,
  PunchRequest: 0x03,
  PunchCommand: 0x04,
  Relay: 0x05,
  RelayDeliver: 0x06,
  Sync: 0x07,
  /** pilot-ts extension (a Go beacon ignores these): a node proves its id with its Ed25519 key. */
  ProofRequest: 0x08,
  ProofChallenge: 0x09,
  Proof: 0x0a,
  ProofOk: 0x0b,
} as const;

/** Size of the beacon's challenge cookie, and of an Ed25519 signature. */
export const BEACON_COOKIE_SIZE = 16;
export const BEACON_SIGNATURE_SIZE = 64;
const PROOF_DOMAIN = Buffer.from('pilot-beacon-proof-v1\0', 'latin1');

/**
 * What a node signs to prove its id to a beacon: a fixed domain, its id and the beacon's cookie
 * (bound by the beacon to the UDP source it was sent to, so a proof replayed from elsewhere fails).
 */
export function beaconProofText(nodeId: number, cookie: Uint8Array): Uint8Array {
  assertU32(nodeId, 'node id');
  const id = Buffer.allocUnsafe(4);
  id.writeUInt32BE(nodeId, 0);
  return Buffer.concat([PROOF_DOMAIN, id, cookie]);
}

export const BEACON_SYNC_MAX_NODES = 0xffff;

export type BeaconMessage =
  | { readonly type: 'Discover'; readonly nodeId: number }
  /** The UDP source the beacon observed. */
  | { readonly type: 'DiscoverReply'; readonly ip: string; readonly port: number }
  | { readonly type: 'PunchRequest'; readonly requester: number; readonly target: number }
  /** The endpoint to punch towards. */
  | { readonly type: 'PunchCommand'; readonly ip: string; readonly port: number }
  /** `frame` is a complete tunnel frame including its magic. */
  | { readonly type: 'Relay'; readonly sender: number; readonly dest: number; readonly frame: Uint8Array }
  | { readonly type: 'RelayDeliver'; readonly sender: number; readonly frame: Uint8Array }
  | { readonly type: 'Sync'; readonly beaconId: number; readonly nodeIds: readonly number[] }
  | { readonly type: 'ProofRequest'; readonly nodeId: number }
  | { readonly type: 'ProofChallenge'; readonly nodeId: number; readonly cookie: Uint8Array }
  | { readonly type: 'Proof'; readonly nodeId: number; readonly cookie: Uint8Array; readonly signature: Uint8Array }
  /** The beacon verified the proof: relays and punches for the id now come only from this endpoint. */
  | { readonly type: 'ProofOk'; readonly nodeId: number };

function idMessage(
  type: number,
  nodeId: number,
  ...parts: { bytes: Uint8Array; size: number; name: string }[]
): Uint8Array {
  assertU32(nodeId, 'node id');
  const buf = Buffer.allocUnsafe(5 + parts.reduce((n, p) => n + p.size, 0));
  buf[0] = type;
  buf.writeUInt32BE(nodeId, 1);
  let at = 5;
  for (const p of parts) {
    if (p.bytes.length !== p.size) throw new RangeError(`${p.name} must be ${p.size} bytes`);
    buf.set(p.bytes, at);
    at += p.size;
  }
  return buf;
}

function encodeEndpoint(type: number, ip: string, port: number): Uint8Array {
  assertU16(port, 'port');
  const ipBytes = parseIpBytes(ip);
  const buf = Buffer.allocUnsafe(2 + ipBytes.length + 2);
  buf[0] = type;
  buf[1] = ipBytes.length;
  buf.set(ipBytes, 2);
  buf.writeUInt16BE(port, 2 + ipBytes.length);
  return buf;
}

export function encodeBeacon(msg: BeaconMessage): Uint8Array {
  switch (msg.type) {
    case 'Discover':
      return idMessage(BeaconType.Discover, msg.nodeId);
    case 'ProofRequest':
      return idMessage(BeaconType.ProofRequest, msg.nodeId);
    case 'ProofChallenge':
      return idMessage(BeaconType.ProofChallenge, msg.nodeId, {
        bytes: msg.cookie,
        size: BEACON_COOKIE_SIZE,
        name: 'cookie',
      });
    case 'Proof':
      return idMessage(
        BeaconType.Proof,
        msg.nodeId,
        { bytes: msg.cookie, size: BEACON_COOKIE_SIZE, name: 'cookie' },
        { bytes: msg.signature, size: BEACON_SIGNATURE_SIZE, name: 'signature' },
      );
    case 'ProofOk':
      return idMessage(BeaconType.ProofOk, msg.nodeId);
    case 'DiscoverReply':
      return encodeEndpoint(BeaconType.DiscoverReply, msg.ip, msg.port);
    case 'PunchRequest': {
      assertU32(msg.requester, 'requester');
      assertU32(msg.target, 'target');
      const buf = Buffer.allocUnsafe(9);
      buf[0] = BeaconType.PunchRequest;
      buf.writeUInt32BE(msg.requester, 1);
      buf.writeUInt32BE(msg.target, 5);
      return buf;
    }
    case 'PunchCommand':
      return encodeEndpoint(BeaconType.PunchCommand, msg.ip, msg.port);
    case 'Relay': {
      assertU32(msg.sender, 'sender');
      assertU32(msg.dest, 'dest');
      const buf = Buffer.allocUnsafe(9 + msg.frame.length);
      buf[0] = BeaconType.Relay;
      buf.writeUInt32BE(msg.sender, 1);
      buf.writeUInt32BE(msg.dest, 5);
      buf.set(msg.frame, 9);
      return buf;
    }
    case 'RelayDeliver': {
      assertU32(msg.sender, 'sender');
      const buf = Buffer.allocUnsafe(5 + msg.frame.length);
      buf[0] = BeaconType.RelayDeliver;
      buf.writeUInt32BE(msg.sender, 1);
      buf.set(msg.frame, 5);
      return buf;
    }
    case 'Sync': {
      assertU32(msg.beaconId, 'beacon id');
      if (msg.nodeIds.length > BEACON_SYNC_MAX_NODES) throw new RangeError(`too many node ids: ${msg.nodeIds.length}`);
      const buf = Buffer.allocUnsafe(7 + 4 * msg.nodeIds.length);
      buf[0] = BeaconType.Sync;
      buf.writeUInt32BE(msg.beaconId, 1);
      buf.writeUInt16BE(msg.nodeIds.length, 5);
      msg.nodeIds.forEach((id, i) => {
        assertU32(id, 'node id');
        buf.writeUInt32BE(id, 7 + 4 * i);
      });
      return buf;
    }
  }
}

function decodeEndpoint(buf: Buffer, name: string): DecodeResult<{ ip: string; port: number }> {
  if (buf.length < 2) return fail('truncated', `${name} truncated`);
  const ipLen = buf[1] as number;
  if (ipLen !== 4 && ipLen !== 16) return fail('bad_value', `${name}: bad IP length ${ipLen}`);
  if (buf.length < 2 + ipLen + 2) return fail('truncated', `${name} truncated`);
  return ok({ ip: formatIpBytes(buf.subarray(2, 2 + ipLen)), port: buf.readUInt16BE(2 + ipLen) });
}

/** Decodes one beacon datagram. Bytes after a fixed-size message are ignored. */
export function decodeBeacon(bytes: Uint8Array): DecodeResult<BeaconMessage> {
  if (bytes.length < 1) return fail('truncated', 'empty beacon message');
  const buf = asBuffer(bytes);
  const type = buf[0] as number;
  const need = (n: number, name: string): DecodeResult<never> | null =>
    buf.length < n ? fail('truncated', `${name} too short: ${buf.length} bytes, need ${n}`) : null;
  switch (type) {
    case BeaconType.Discover:
      return need(5, 'Discover') ?? ok({ type: 'Discover', nodeId: buf.readUInt32BE(1) });
    case BeaconType.DiscoverReply: {
      const ep = decodeEndpoint(buf, 'DiscoverReply');
      return ep.ok ? ok({ type: 'DiscoverReply', ...ep.value }) : ep;
    }
    case BeaconType.PunchRequest:
      return (
        need(9, 'PunchRequest') ??
        ok({ type: 'PunchRequest', requester: buf.readUInt32BE(1), target: buf.readUInt32BE(5) })
      );
    case BeaconType.PunchCommand: {
      const ep = decodeEndpoint(buf, 'PunchCommand');
      return ep.ok ? ok({ type: 'PunchCommand', ...ep.value }) : ep;
    }
    case BeaconType.Relay:
      return (
        need(9, 'Relay') ??
        ok({
          type: 'Relay',
          sender: buf.readUInt32BE(1),
          dest: buf.readUInt32BE(5),
          frame: copyBytes(buf, 9, buf.length),
        })
      );
    case BeaconType.RelayDeliver:
      return (
        need(5, 'RelayDeliver') ??
        ok({ type: 'RelayDeliver', sender: buf.readUInt32BE(1), frame: copyBytes(buf, 5, buf.length) })
      );
    case BeaconType.Sync: {
      const short = need(7, 'Sync');
      if (short) return short;
      const count = buf.readUInt16BE(5);
      const tooShort = need(7 + 4 * count, 'Sync');
      if (tooShort) return tooShort;
      const nodeIds: number[] = [];
      for (let i = 0; i < count; i++) nodeIds.push(buf.readUInt32BE(7 + 4 * i));
      return ok({ type: 'Sync', beaconId: buf.readUInt32BE(1), nodeIds });
    }
    case BeaconType.ProofRequest:
      return need(5, 'ProofRequest') ?? ok({ type: 'ProofRequest', nodeId: buf.readUInt32BE(1) });
    case BeaconType.ProofChallenge:
      return (
        need(5 + BEACON_COOKIE_SIZE, 'ProofChallenge') ??
        ok({ type: 'ProofChallenge', nodeId: buf.readUInt32BE(1), cookie: copyBytes(buf, 5, 5 + BEACON_COOKIE_SIZE) })
      );
    case BeaconType.Proof: {
      const end = 5 + BEACON_COOKIE_SIZE + BEACON_SIGNATURE_SIZE;
      return (
        need(end, 'Proof') ??
        ok({
          type: 'Proof',
          nodeId: buf.readUInt32BE(1),
          cookie: copyBytes(buf, 5, 5 + BEACON_COOKIE_SIZE),
          signature: copyBytes(buf, 5 + BEACON_COOKIE_SIZE, end),
        })
      );
    }
    case BeaconType.ProofOk:
      return need(5, 'ProofOk') ?? ok({ type: 'ProofOk', nodeId: buf.readUInt32BE(1) });
    default:
      return fail('bad_value', `unknown beacon message type 0x${type.toString(16).padStart(2, '0')}`);
  }
}
