import fc from 'fast-check';
import type { Addr } from '../../src/protocol/address.js';
import type { BeaconMessage } from '../../src/protocol/beacon.js';
import type { HandshakeMessage } from '../../src/protocol/handshake.js';
import { formatIpBytes } from '../../src/protocol/ip.js';
import type { IpcHandshakeOp, IpcJsonCmd, IpcMessage } from '../../src/protocol/ipc.js';
import type { JsonObject, JsonValue } from '../../src/protocol/json.js';
import type { Packet } from '../../src/protocol/packet.js';
import type { SackBlock } from '../../src/protocol/sack.js';
import type { SendResults, StatusUpdate, SubmitRequest, SubmitResponse } from '../../src/protocol/tasksubmit.js';
import { formatTaskId } from '../../src/protocol/tasksubmit.js';
import type { PilaFrame, PilkFrame, PilsFrame } from '../../src/protocol/tunnel.js';
import type { NatProbeEndpoint, NatProbeReply } from '../../src/protocol/nat-probe.js';

/** Shared fast-check arbitraries for the protocol codecs. */

export const u8 = fc.integer({ min: 0, max: 0xff });
export const u16 = fc.integer({ min: 0, max: 0xffff });
export const u32 = fc.integer({ min: 0, max: 0xffffffff });
export const bytes = (maxLength = 64, minLength = 0): fc.Arbitrary<Uint8Array> =>
  fc.uint8Array({ minLength, maxLength });
export const fixedBytes = (n: number): fc.Arbitrary<Uint8Array> => fc.uint8Array({ minLength: n, maxLength: n });
/** Valid Unicode text (no lone surrogates), so that it survives UTF-8. */
export const text = (maxLength = 32): fc.Arbitrary<string> => fc.string({ unit: 'binary', maxLength });

export const addr: fc.Arbitrary<Addr> = fc.record({ network: u16, node: u32 });

export const packet: fc.Arbitrary<Packet> = fc.record({
  version: fc.integer({ min: 0, max: 15 }),
  flags: fc.integer({ min: 0, max: 15 }),
  protocol: u8,
  src: addr,
  dst: addr,
  srcPort: u16,
  dstPort: u16,
  seq: u32,
  ack: u32,
  window: u16,
  payload: bytes(200),
});

export const sackBlocks: fc.Arbitrary<SackBlock[]> = fc.array(fc.record({ left: u32, right: u32 }), {
  minLength: 1,
  maxLength: 4,
});

export const pils: fc.Arbitrary<PilsFrame> = fc.record({
  senderNode: u32,
  nonce: fixedBytes(12),
  sealed: bytes(120, 16),
});
export const pilk: fc.Arbitrary<PilkFrame> = fc.record({ senderNode: u32, x25519Public: fixedBytes(32) });
export const pila: fc.Arbitrary<PilaFrame> = fc.record({
  senderNode: u32,
  x25519Public: fixedBytes(32),
  ed25519Public: fixedBytes(32),
  signature: fixedBytes(64),
});

const ipv4Text = fixedBytes(4).map(formatIpBytes);
const ipv6Text = fixedBytes(16)
  .filter((b) => !(b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff))
  .map(formatIpBytes);
export const ipText = fc.oneof(ipv4Text, ipv6Text);

export const beacon: fc.Arbitrary<BeaconMessage> = fc.oneof(
  fc.record({ type: fc.constant('Discover' as const), nodeId: u32 }),
  fc.record({ type: fc.constant('DiscoverReply' as const), ip: ipText, port: u16 }),
  fc.record({ type: fc.constant('PunchRequest' as const), requester: u32, target: u32 }),
  fc.record({ type: fc.constant('PunchCommand' as const), ip: ipText, port: u16 }),
  fc.record({ type: fc.constant('Relay' as const), sender: u32, dest: u32, frame: bytes(80) }),
  fc.record({ type: fc.constant('RelayDeliver' as const), sender: u32, frame: bytes(80) }),
  fc.record({ type: fc.constant('Sync' as const), beaconId: u32, nodeIds: fc.array(u32, { maxLength: 20 }) }),
  fc.record({ type: fc.constant('ProofRequest' as const), nodeId: u32 }),
  fc.record({ type: fc.constant('ProofChallenge' as const), nodeId: u32, cookie: fixedBytes(16) }),
  fc.record({ type: fc.constant('Proof' as const), nodeId: u32, cookie: fixedBytes(16), signature: fixedBytes(64) }),
  fc.record({ type: fc.constant('ProofOk' as const), nodeId: u32 }),
);

/** JSON values as they survive the wire (JSON has no -0: it reads back as 0). */
export const jsonValue: fc.Arbitrary<JsonValue> = fc
  .jsonValue({ maxDepth: 3 })
  .map((v) => JSON.parse(JSON.stringify(v)) as JsonValue);
export const jsonObject: fc.Arbitrary<JsonObject> = fc.dictionary(fc.string({ maxLength: 10 }), jsonValue, {
  maxKeys: 6,
});

const handshakeOp: fc.Arbitrary<IpcHandshakeOp> = fc.oneof(
  fc.record({ sub: fc.constant('Request' as const), nodeId: u32, justification: text() }),
  fc.record({ sub: fc.constant('Approve' as const), nodeId: u32 }),
  fc.record({ sub: fc.constant('Reject' as const), nodeId: u32, reason: text() }),
  fc.record({ sub: fc.constant('Pending' as const) }),
  fc.record({ sub: fc.constant('Trusted' as const) }),
  fc.record({ sub: fc.constant('Revoke' as const), nodeId: u32 }),
);

const jsonCmd: fc.Arbitrary<IpcJsonCmd> = fc.constantFrom(
  'InfoOK',
  'HandshakeOK',
  'ResolveHostnameOK',
  'SetHostnameOK',
  'SetVisibilityOK',
  'DeregisterOK',
  'SetTagsOK',
  'SetWebhookOK',
  'SetTaskExecOK',
);

export const ipcMessage: fc.Arbitrary<IpcMessage> = fc.oneof(
  fc.record({ cmd: fc.constantFrom('Bind' as const, 'BindOK' as const), port: u16 }),
  fc.record({ cmd: fc.constant('Dial' as const), addr, port: u16 }),
  fc.record({ cmd: fc.constant('DialData' as const), addr, port: u16, data: bytes(100) }),
  fc.record({ cmd: fc.constant('DialCancel' as const), dialSeq: u32 }),
  fc.record({ cmd: fc.constantFrom('DialOK' as const, 'Close' as const, 'CloseOK' as const), connId: u32 }),
  fc.record({ cmd: fc.constant('Accept' as const), localPort: u16, connId: u32, remoteAddr: addr, remotePort: u16 }),
  fc.record({ cmd: fc.constantFrom('Send' as const, 'Recv' as const), connId: u32, data: bytes(100) }),
  fc.record({ cmd: fc.constant('Error' as const), code: u16, message: text() }),
  fc.record({ cmd: fc.constant('SendTo' as const), addr, port: u16, data: bytes(100) }),
  fc.record({ cmd: fc.constant('RecvFrom' as const), srcAddr: addr, srcPort: u16, dstPort: u16, data: bytes(100) }),
  fc.record({ cmd: fc.constantFrom('Info' as const, 'Deregister' as const) }),
  fc.record({ cmd: fc.constant('Handshake' as const), op: handshakeOp }),
  fc.record({ cmd: fc.constantFrom('ResolveHostname' as const, 'SetHostname' as const), hostname: text() }),
  fc.record({ cmd: fc.constant('SetVisibility' as const), public: fc.boolean() }),
  fc.record({ cmd: fc.constant('SetTaskExec' as const), enabled: fc.boolean() }),
  fc.record({ cmd: fc.constant('SetTags' as const), tags: fc.array(text(12), { maxLength: 5 }) }),
  fc.record({ cmd: fc.constant('SetWebhook' as const), url: text() }),
  fc.record({ cmd: jsonCmd, json: jsonObject }),
);

export const handshakeMessage: fc.Arbitrary<HandshakeMessage> = fc.record({
  type: fc.constantFrom(
    'handshake_request' as const,
    'handshake_accept' as const,
    'handshake_reject' as const,
    'handshake_revoke' as const,
  ),
  nodeId: u32,
  publicKey: fc.base64String({ maxLength: 44 }),
  justification: text(200),
  signature: fc.base64String({ maxLength: 88 }),
  reason: text(40),
  timestamp: fc.maxSafeInteger(),
});

export const taskId: fc.Arbitrary<string> = fixedBytes(16).map(formatTaskId);

export const submitRequest: fc.Arbitrary<SubmitRequest> = fc.record({
  taskId,
  taskDescription: text(100),
  fromAddr: addr.map((a) => `${a.network}:${a.node}`),
  toAddr: text(20),
});

export const submitResponse: fc.Arbitrary<SubmitResponse> = fc.record({
  taskId,
  status: fc.constantFrom(200, 400),
  message: text(60),
});

export const statusUpdate: fc.Arbitrary<StatusUpdate> = fc.record({
  taskId,
  status: fc.constantFrom('ACCEPTED', 'DECLINED', 'EXECUTING', 'SUCCEEDED'),
  justification: text(60),
});

export const sendResults: fc.Arbitrary<SendResults> = fc.record(
  {
    taskId,
    resultType: fc.constantFrom('text' as const, 'file' as const),
    resultText: text(60),
    filename: text(20),
    fileData: bytes(100),
    completedAt: fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
    timeIdleMs: fc.nat(),
    timeStagedMs: fc.nat(),
    timeCpuMs: fc.nat(),
  },
  { requiredKeys: ['taskId', 'resultType', 'completedAt'] },
);

/** Splits bytes into random chunks (including empty ones) for incremental decoders. */
export function chunked(data: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (data.length + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(data.subarray(prev, p));
    prev = p;
  }
  out.push(data.subarray(prev));
  return out;
}

/** Replaces every byte array with its hex so that Buffer and Uint8Array compare equal. */
export function norm(value: unknown): unknown {
  if (value instanceof Uint8Array) return `hex:${Buffer.from(value).toString('hex')}`;
  if (Array.isArray(value)) return value.map(norm);
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, norm(v)]));
  }
  return value;
}

/** NAT probe replies (pilot-ts beacon extension 0x0d). */
export const natProbeEndpoint: fc.Arbitrary<NatProbeEndpoint> = fc
  .record({ ip: ipText, port: u16 })
  .map(({ ip, port }) => ({ ip, port }));
export const natProbeReply: fc.Arbitrary<NatProbeReply> = fc
  .record({
    token: u32,
    source: fc.constantFrom(0 as const, 1 as const, 2 as const),
    observed: natProbeEndpoint,
    otherPort: fc.option(natProbeEndpoint, { nil: undefined }),
    otherAddress: fc.option(natProbeEndpoint, { nil: undefined }),
  })
  .map((r) => ({ ...r }));
