import { readAddr, writeAddr, type Addr } from './address.js';
import { asBuffer, assertU16, assertU32, copyBytes, utf8Decode, utf8Encode } from './bytes.js';
import { encodeJson, parseJson, parseJsonObject, type JsonObject } from './json.js';
import { fail, ok, type DecodeResult } from './result.js';
import { StreamDecoder, type ByteQueue } from './stream.js';

/** IPC between driver/CLI and daemon (PROTOCOL.md §8): u32 length + (cmd u8 + payload). */

export const IPC_MAX_MESSAGE = 1048576;

export const IpcCmd = {
  Bind: 0x01,
  BindOK: 0x02,
  Dial: 0x03,
  DialOK: 0x04,
  Accept: 0x05,
  Send: 0x06,
  Recv: 0x07,
  Close: 0x08,
  CloseOK: 0x09,
  Error: 0x0a,
  SendTo: 0x0b,
  RecvFrom: 0x0c,
  Info: 0x0d,
  InfoOK: 0x0e,
  Handshake: 0x0f,
  HandshakeOK: 0x10,
  ResolveHostname: 0x11,
  ResolveHostnameOK: 0x12,
  SetHostname: 0x13,
  SetHostnameOK: 0x14,
  SetVisibility: 0x15,
  SetVisibilityOK: 0x16,
  Deregister: 0x17,
  DeregisterOK: 0x18,
  SetTags: 0x19,
  SetTagsOK: 0x1a,
  SetWebhook: 0x1b,
  SetWebhookOK: 0x1c,
  SetTaskExec: 0x1d,
  SetTaskExecOK: 0x1e,
  /**
   * pilot-ts extension: a Dial carrying the first bytes to send, answered like a Dial (DialOK or
   * Error). The daemon sends the bytes with the handshake's last ACK, sparing the client the round
   * trip between DialOK and its first Send. Far from the reference's codes (it uses up to 0x24); a
   * daemon without it answers `unknown command: 0x40`.
   */
  DialData: 0x40,
  /**
   * pilot-ts extension, no reply: the client gave up on one of its dials. `dial_seq` counts the
   * client's Dial and DialData messages on this IPC connection, from 1. A dial still waiting or
   * under way is abandoned (its reply becomes an Error, the reply the client still expects); one
   * already answered with DialOK has its connection reset. A client sends it only to a daemon whose
   * InfoOK lists `dial_cancel` in `ipc_features`.
   */
  DialCancel: 0x41,
} as const;

export type IpcCmdName = keyof typeof IpcCmd;

/** Handshake sub-commands (§8.3). */
export const IpcHandshakeSub = {
  Request: 0x01,
  Approve: 0x02,
  Reject: 0x03,
  Pending: 0x04,
  Trusted: 0x05,
  Revoke: 0x06,
  /** pilot-ts extension: the requests this node sent and what became of them (`handshakes` in `ipc_features`). */
  Outgoing: 0x07,
} as const;

export type IpcHandshakeOp =
  | { readonly sub: 'Request'; readonly nodeId: number; readonly justification: string }
  | { readonly sub: 'Approve'; readonly nodeId: number }
  | { readonly sub: 'Reject'; readonly nodeId: number; readonly reason: string }
  | { readonly sub: 'Pending' }
  | { readonly sub: 'Trusted' }
  | { readonly sub: 'Revoke'; readonly nodeId: number }
  | { readonly sub: 'Outgoing' };

/** Commands whose payload is one JSON object (replies, including registry objects passed through verbatim). */
export type IpcJsonCmd =
  | 'InfoOK'
  | 'HandshakeOK'
  | 'ResolveHostnameOK'
  | 'SetHostnameOK'
  | 'SetVisibilityOK'
  | 'DeregisterOK'
  | 'SetTagsOK'
  | 'SetWebhookOK'
  | 'SetTaskExecOK';

const JSON_CMDS: ReadonlySet<string> = new Set<IpcJsonCmd>([
  'InfoOK',
  'HandshakeOK',
  'ResolveHostnameOK',
  'SetHostnameOK',
  'SetVisibilityOK',
  'DeregisterOK',
  'SetTagsOK',
  'SetWebhookOK',
  'SetTaskExecOK',
]);

export type IpcMessage =
  | { readonly cmd: 'Bind'; readonly port: number }
  | { readonly cmd: 'BindOK'; readonly port: number }
  | { readonly cmd: 'Dial'; readonly addr: Addr; readonly port: number }
  | { readonly cmd: 'DialOK'; readonly connId: number }
  | { readonly cmd: 'DialData'; readonly addr: Addr; readonly port: number; readonly data: Uint8Array }
  | { readonly cmd: 'DialCancel'; readonly dialSeq: number }
  | {
      readonly cmd: 'Accept';
      readonly localPort: number;
      readonly connId: number;
      readonly remoteAddr: Addr;
      readonly remotePort: number;
    }
  | { readonly cmd: 'Send'; readonly connId: number; readonly data: Uint8Array }
  | { readonly cmd: 'Recv'; readonly connId: number; readonly data: Uint8Array }
  | { readonly cmd: 'Close'; readonly connId: number }
  | { readonly cmd: 'CloseOK'; readonly connId: number }
  /** The reference always sends code 1; pilot-ts sends the code of the failure (IPC_ERROR_CODES). */
  | { readonly cmd: 'Error'; readonly code: number; readonly message: string }
  | { readonly cmd: 'SendTo'; readonly addr: Addr; readonly port: number; readonly data: Uint8Array }
  | {
      readonly cmd: 'RecvFrom';
      readonly srcAddr: Addr;
      readonly srcPort: number;
      readonly dstPort: number;
      readonly data: Uint8Array;
    }
  | { readonly cmd: 'Info' }
  | { readonly cmd: 'Handshake'; readonly op: IpcHandshakeOp }
  | { readonly cmd: 'ResolveHostname'; readonly hostname: string }
  | { readonly cmd: 'SetHostname'; readonly hostname: string }
  | { readonly cmd: 'SetVisibility'; readonly public: boolean }
  | { readonly cmd: 'Deregister' }
  | { readonly cmd: 'SetTags'; readonly tags: readonly string[] }
  | { readonly cmd: 'SetWebhook'; readonly url: string }
  | { readonly cmd: 'SetTaskExec'; readonly enabled: boolean }
  | { readonly cmd: IpcJsonCmd; readonly json: JsonObject };

function u16(n: number, what: string): Buffer {
  assertU16(n, what);
  const b = Buffer.allocUnsafe(2);
  b.writeUInt16BE(n, 0);
  return b;
}

function u32(n: number, what: string): Buffer {
  assertU32(n, what);
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(n, 0);
  return b;
}

function addr(a: Addr): Buffer {
  assertU16(a.network, 'network id');
  assertU32(a.node, 'node id');
  const b = Buffer.allocUnsafe(6);
  writeAddr(b, 0, a);
  return b;
}

function handshakePayload(op: IpcHandshakeOp): Buffer[] {
  const sub = Buffer.of(IpcHandshakeSub[op.sub]);
  switch (op.sub) {
    case 'Request':
      return [sub, u32(op.nodeId, 'node id'), utf8Encode(op.justification)];
    case 'Reject':
      return [sub, u32(op.nodeId, 'node id'), utf8Encode(op.reason)];
    case 'Approve':
    case 'Revoke':
      return [sub, u32(op.nodeId, 'node id')];
    case 'Pending':
    case 'Trusted':
    case 'Outgoing':
      return [sub];
  }
}

function payloadParts(msg: IpcMessage): Uint8Array[] {
  switch (msg.cmd) {
    case 'Bind':
    case 'BindOK':
      return [u16(msg.port, 'port')];
    case 'Dial':
      return [addr(msg.addr), u16(msg.port, 'port')];
    case 'DialData':
      return [addr(msg.addr), u16(msg.port, 'port'), msg.data];
    case 'DialOK':
    case 'Close':
    case 'CloseOK':
      return [u32(msg.connId, 'conn id')];
    case 'DialCancel':
      return [u32(msg.dialSeq, 'dial sequence number')];
    case 'Accept':
      return [
        u16(msg.localPort, 'local port'),
        u32(msg.connId, 'conn id'),
        addr(msg.remoteAddr),
        u16(msg.remotePort, 'remote port'),
      ];
    case 'Send':
    case 'Recv':
      return [u32(msg.connId, 'conn id'), msg.data];
    case 'Error':
      return [u16(msg.code, 'error code'), utf8Encode(msg.message)];
    case 'SendTo':
      return [addr(msg.addr), u16(msg.port, 'port'), msg.data];
    case 'RecvFrom':
      return [addr(msg.srcAddr), u16(msg.srcPort, 'source port'), u16(msg.dstPort, 'destination port'), msg.data];
    case 'Info':
    case 'Deregister':
      return [];
    case 'Handshake':
      return handshakePayload(msg.op);
    case 'ResolveHostname':
    case 'SetHostname':
      return [utf8Encode(msg.hostname)];
    case 'SetVisibility':
      return [Buffer.of(msg.public ? 1 : 0)];
    case 'SetTaskExec':
      return [Buffer.of(msg.enabled ? 1 : 0)];
    case 'SetTags':
      return [encodeJson([...msg.tags])];
    case 'SetWebhook':
      return [utf8Encode(msg.url)];
    default:
      return [encodeJson(msg.json)];
  }
}

/** cmd byte + payload, without the length prefix. Throws RangeError on invalid fields or size > 1 MiB. */
export function encodeIpcMessage(msg: IpcMessage): Uint8Array {
  return encodeIpcFrame(msg).subarray(4);
}

/** Length prefix + message, ready to write to the socket. */
export function encodeIpcFrame(msg: IpcMessage): Buffer {
  return Buffer.concat(encodeIpcFrameParts(msg));
}

/** Data of at least this size is written as its own piece rather than copied into the frame. */
const GATHER_MIN = 1024;

/**
 * The frame as pieces to write back to back: the length prefix with the small fields, then any
 * large trailing data as it is (no copy). Throws RangeError on invalid fields or size > 1 MiB.
 */
export function encodeIpcFrameParts(msg: IpcMessage): Uint8Array[] {
  const parts = [Buffer.of(IpcCmd[msg.cmd]), ...payloadParts(msg)];
  let length = 0;
  for (const part of parts) length += part.length;
  if (length > IPC_MAX_MESSAGE) throw new RangeError(`IPC message too long: ${length} bytes`);
  const prefix = Buffer.allocUnsafe(4);
  prefix.writeUInt32BE(length, 0);
  const last = parts[parts.length - 1] as Uint8Array;
  if (parts.length > 1 && last.length >= GATHER_MIN) return [Buffer.concat([prefix, ...parts.slice(0, -1)]), last];
  return [Buffer.concat([prefix, ...parts])];
}

/** The part of a stream socket that writeIpcFrame needs. */
export interface GatheringWriter {
  cork(): void;
  uncork(): void;
  write(chunk: Uint8Array): boolean;
  readonly writableCorked: number;
}

/**
 * Writes one frame (see encodeIpcFrameParts); false = buffer full. The socket stays corked until
 * the end of the current tick, so every frame written meanwhile leaves in one gathered write.
 */
export function writeIpcFrame(socket: GatheringWriter, msg: IpcMessage): boolean {
  const parts = encodeIpcFrameParts(msg);
  if (socket.writableCorked === 0) {
    socket.cork();
    process.nextTick(() => socket.uncork());
  }
  let ok = true;
  for (const part of parts) ok = socket.write(part);
  return ok;
}

const CMD_NAMES: ReadonlyMap<number, IpcCmdName> = new Map(
  Object.entries(IpcCmd).map(([name, code]) => [code, name as IpcCmdName]),
);

const hex2 = (n: number): string => `0x${n.toString(16).padStart(2, '0')}`;

function decodeHandshake(p: Buffer): DecodeResult<IpcMessage> {
  if (p.length < 1) return fail('truncated', 'Handshake without sub-command');
  const sub = p[0] as number;
  const nodeId = (): DecodeResult<number> =>
    p.length < 5 ? fail('truncated', 'Handshake: missing node id') : ok(p.readUInt32BE(1));
  const wrap = (op: IpcHandshakeOp): DecodeResult<IpcMessage> => ok({ cmd: 'Handshake', op });
  switch (sub) {
    case IpcHandshakeSub.Pending:
      return wrap({ sub: 'Pending' });
    case IpcHandshakeSub.Trusted:
      return wrap({ sub: 'Trusted' });
    case IpcHandshakeSub.Outgoing:
      return wrap({ sub: 'Outgoing' });
  }
  const id = nodeId();
  if (!id.ok) return id;
  switch (sub) {
    case IpcHandshakeSub.Request:
      return wrap({ sub: 'Request', nodeId: id.value, justification: utf8Decode(p.subarray(5)) });
    case IpcHandshakeSub.Approve:
      return wrap({ sub: 'Approve', nodeId: id.value });
    case IpcHandshakeSub.Reject:
      return wrap({ sub: 'Reject', nodeId: id.value, reason: utf8Decode(p.subarray(5)) });
    case IpcHandshakeSub.Revoke:
      return wrap({ sub: 'Revoke', nodeId: id.value });
    default:
      return fail('bad_value', `handshake: unknown sub-command ${hex2(sub)}`);
  }
}

function decodeTags(p: Buffer): DecodeResult<IpcMessage> {
  const parsed = parseJson(p);
  if (!parsed.ok) return parsed;
  const v = parsed.value;
  // Go unmarshals `null` into a nil slice, which is how an empty tag list can arrive.
  if (v === null) return ok({ cmd: 'SetTags', tags: [] });
  if (!Array.isArray(v) || !v.every((t): t is string => typeof t === 'string')) {
    return fail('bad_value', 'SetTags payload is not a JSON array of strings');
  }
  return ok({ cmd: 'SetTags', tags: v });
}

/**
 * Decodes one IPC message (cmd byte + payload). Fixed-size payloads need at least their size;
 * bytes beyond it are ignored.
 */
export function decodeIpcMessage(bytes: Uint8Array): DecodeResult<IpcMessage> {
  if (bytes.length < 1) return fail('truncated', 'empty IPC message');
  if (bytes.length > IPC_MAX_MESSAGE) return fail('too_long', `IPC message too long: ${bytes.length} bytes`);
  const code = bytes[0] as number;
  const name = CMD_NAMES.get(code);
  if (name === undefined) return fail('bad_value', `unknown command: ${hex2(code)}`);
  const p = asBuffer(bytes).subarray(1);
  const need = (n: number): DecodeResult<never> | null =>
    p.length < n ? fail('truncated', `${name} payload too short: ${p.length} bytes, need ${n}`) : null;
  switch (name) {
    case 'Bind':
    case 'BindOK':
      return need(2) ?? ok({ cmd: name, port: p.readUInt16BE(0) });
    case 'Dial':
      return need(8) ?? ok({ cmd: name, addr: readAddr(p, 0), port: p.readUInt16BE(6) });
    case 'DialData':
      return need(8) ?? ok({ cmd: name, addr: readAddr(p, 0), port: p.readUInt16BE(6), data: p.subarray(8) });
    case 'DialOK':
    case 'Close':
    case 'CloseOK':
      return need(4) ?? ok({ cmd: name, connId: p.readUInt32BE(0) });
    case 'DialCancel':
      return need(4) ?? ok({ cmd: name, dialSeq: p.readUInt32BE(0) });
    case 'Accept':
      return (
        need(14) ??
        ok({
          cmd: name,
          localPort: p.readUInt16BE(0),
          connId: p.readUInt32BE(2),
          remoteAddr: readAddr(p, 6),
          remotePort: p.readUInt16BE(12),
        })
      );
    case 'Send':
    case 'Recv':
      return need(4) ?? ok({ cmd: name, connId: p.readUInt32BE(0), data: p.subarray(4) });
    case 'Error':
      return need(2) ?? ok({ cmd: name, code: p.readUInt16BE(0), message: utf8Decode(p.subarray(2)) });
    case 'SendTo':
      return (
        need(8) ?? ok({ cmd: name, addr: readAddr(p, 0), port: p.readUInt16BE(6), data: copyBytes(p, 8, p.length) })
      );
    case 'RecvFrom':
      return (
        need(10) ??
        ok({
          cmd: name,
          srcAddr: readAddr(p, 0),
          srcPort: p.readUInt16BE(6),
          dstPort: p.readUInt16BE(8),
          data: copyBytes(p, 10, p.length),
        })
      );
    case 'Info':
    case 'Deregister':
      return ok({ cmd: name });
    case 'Handshake':
      return decodeHandshake(p);
    case 'ResolveHostname':
    case 'SetHostname':
      return ok({ cmd: name, hostname: utf8Decode(p) });
    case 'SetVisibility':
      return need(1) ?? ok({ cmd: name, public: p[0] === 1 });
    case 'SetTaskExec':
      return need(1) ?? ok({ cmd: name, enabled: p[0] === 1 });
    case 'SetTags':
      return decodeTags(p);
    case 'SetWebhook':
      return ok({ cmd: name, url: utf8Decode(p) });
    default: {
      if (!JSON_CMDS.has(name)) return fail('bad_value', `unknown command: ${hex2(code)}`);
      const json = parseJsonObject(p);
      return json.ok ? ok({ cmd: name as IpcJsonCmd, json: json.value }) : json;
    }
  }
}

function ipcStep(queue: ByteQueue): DecodeResult<Uint8Array> | null {
  for (;;) {
    if (queue.length < 4) return null;
    const length = queue.readUint32(0);
    if (length > IPC_MAX_MESSAGE) return fail('too_long', `IPC frame length ${length} exceeds ${IPC_MAX_MESSAGE}`);
    if (length === 0) {
      queue.skip(4);
      continue;
    }
    if (queue.length < 4 + length) return null;
    queue.skip(4);
    return ok(queue.take(length));
  }
}

/**
 * Splits an IPC byte stream into messages (cmd + payload, still undecoded). Zero-length frames are
 * skipped; a declared length above 1 MiB fails the stream with 'too_long' before anything of it
 * is buffered.
 */
export class IpcFrameSplitter extends StreamDecoder<Uint8Array> {
  constructor() {
    super(ipcStep);
  }
}
