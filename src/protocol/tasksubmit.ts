import { encodeJson, parseJsonObject, type JsonObject, type JsonValue } from './json.js';
import { fail, ok, type DecodeResult } from './result.js';
import type { Decoded } from './stream.js';
import {
  decodeTypedFrame,
  encodeTypedFrame,
  TYPED_FRAME_MAX_PAYLOAD,
  TypedFrameDecoder,
  type TypedFrame,
} from './typed-frame.js';

/** Task submit frames on port 1003 (PROTOCOL.md §9.5): type u32, length u32, JSON payload. */

export const TASK_MAX_PAYLOAD = TYPED_FRAME_MAX_PAYLOAD;

export const TaskFrameType = { Submit: 1, Result: 2, StatusUpdate: 3, SendResults: 4 } as const;

export const TASK_STATUSES = [
  'NEW',
  'ACCEPTED',
  'DECLINED',
  'EXECUTING',
  'COMPLETED',
  'SUCCEEDED',
  'CANCELLED',
  'EXPIRED',
] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];

export function isTaskStatus(value: unknown): value is TaskStatus {
  return typeof value === 'string' && (TASK_STATUSES as readonly string[]).includes(value);
}

const TASK_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** `%08x-%04x-%04x-%04x-%012x`, lower-case hex. Anything else could not have come from 16 random bytes. */
export function isValidTaskId(value: unknown): value is string {
  return typeof value === 'string' && TASK_ID.test(value);
}

/** Formats 16 bytes (normally random) as a task ID. */
export function formatTaskId(bytes: Uint8Array): string {
  if (bytes.length !== 16) throw new RangeError(`task id needs 16 bytes, got ${bytes.length}`);
  const hex = Buffer.from(bytes).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export interface SubmitRequest {
  readonly taskId: string;
  readonly taskDescription: string;
  /** Claimed by the submitter; not authenticated. */
  readonly fromAddr: string;
  readonly toAddr: string;
}

export interface SubmitResponse {
  /** The request's task id; '' in a refusal of a request that carried no valid one. */
  readonly taskId: string;
  /** 200 accepted, 400 rejected. */
  readonly status: number;
  readonly message: string;
}

export interface StatusUpdate {
  readonly taskId: string;
  readonly status: string;
  readonly justification: string;
}

export interface SendResults {
  readonly taskId: string;
  readonly resultType: 'text' | 'file';
  readonly resultText?: string;
  readonly filename?: string;
  readonly fileData?: Uint8Array;
  readonly completedAt: string;
  readonly timeIdleMs?: number;
  readonly timeStagedMs?: number;
  readonly timeCpuMs?: number;
}

/** What a daemon's port-1003 listener can receive (a SUBMIT there is a request). */
export type TaskRequest =
  | { readonly kind: 'Submit'; readonly message: SubmitRequest }
  | { readonly kind: 'StatusUpdate'; readonly message: StatusUpdate }
  | { readonly kind: 'SendResults'; readonly message: SendResults };

function checkTaskId(taskId: string): void {
  if (!isValidTaskId(taskId)) throw new RangeError(`invalid task id: ${JSON.stringify(taskId)}`);
}

function checkInt(n: number | undefined, what: string): void {
  if (n !== undefined && !Number.isSafeInteger(n)) throw new RangeError(`${what} is not an integer: ${n}`);
}

function frame(type: number, json: JsonObject): Uint8Array {
  return encodeTypedFrame({ type, payload: encodeJson(json) });
}

export function encodeSubmitRequest(msg: SubmitRequest): Uint8Array {
  checkTaskId(msg.taskId);
  return frame(TaskFrameType.Submit, {
    task_id: msg.taskId,
    task_description: msg.taskDescription,
    from_addr: msg.fromAddr,
    to_addr: msg.toAddr,
  });
}

export function encodeSubmitResponse(msg: SubmitResponse): Uint8Array {
  if (msg.taskId !== '') checkTaskId(msg.taskId);
  checkInt(msg.status, 'status');
  return frame(TaskFrameType.Submit, { task_id: msg.taskId, status: msg.status, message: msg.message });
}

export function encodeStatusUpdate(msg: StatusUpdate): Uint8Array {
  checkTaskId(msg.taskId);
  return frame(TaskFrameType.StatusUpdate, {
    task_id: msg.taskId,
    status: msg.status,
    justification: msg.justification,
  });
}

/** Optional fields are written only when defined. */
export function encodeSendResults(msg: SendResults): Uint8Array {
  checkTaskId(msg.taskId);
  if (msg.resultType !== 'text' && msg.resultType !== 'file')
    throw new RangeError(`invalid result type: ${String(msg.resultType)}`);
  checkInt(msg.timeIdleMs, 'time_idle_ms');
  checkInt(msg.timeStagedMs, 'time_staged_ms');
  checkInt(msg.timeCpuMs, 'time_cpu_ms');
  const json: Record<string, JsonValue> = { task_id: msg.taskId, result_type: msg.resultType };
  if (msg.resultText !== undefined) json.result_text = msg.resultText;
  if (msg.filename !== undefined) json.filename = msg.filename;
  if (msg.fileData !== undefined) json.file_data = Buffer.from(msg.fileData).toString('base64');
  json.completed_at = msg.completedAt;
  if (msg.timeIdleMs !== undefined) json.time_idle_ms = msg.timeIdleMs;
  if (msg.timeStagedMs !== undefined) json.time_staged_ms = msg.timeStagedMs;
  if (msg.timeCpuMs !== undefined) json.time_cpu_ms = msg.timeCpuMs;
  return frame(TaskFrameType.SendResults, json);
}

/** Field readers that turn a JSON object into typed values or a DecodeError. */
class Fields {
  error: string | null = null;
  constructor(private readonly obj: JsonObject) {}

  private bad(key: string, want: string): void {
    this.error ??= `task field "${key}" must be ${want}`;
  }

  string(key: string): string {
    const v = this.obj[key];
    if (typeof v === 'string') return v;
    this.bad(key, 'a string');
    return '';
  }

  optString(key: string): string | undefined {
    const v = this.obj[key];
    if (v === undefined || typeof v === 'string') return v;
    this.bad(key, 'a string');
    return undefined;
  }

  int(key: string): number {
    const v = this.obj[key];
    if (typeof v === 'number' && Number.isSafeInteger(v)) return v;
    this.bad(key, 'an integer');
    return 0;
  }

  optInt(key: string): number | undefined {
    const v = this.obj[key];
    if (v === undefined) return undefined;
    if (typeof v === 'number' && Number.isSafeInteger(v)) return v;
    this.bad(key, 'an integer');
    return undefined;
  }

  taskId(): string {
    const v = this.string('task_id');
    if (this.error === null && !isValidTaskId(v))
      this.error = 'task field "task_id" is not a valid task id (8-4-4-4-12 lower-case hex digits)';
    return v;
  }

  /** A task id, or '' (a refusal of a request whose id could not be read). */
  taskIdOrEmpty(): string {
    return this.obj.task_id === '' ? '' : this.taskId();
  }

  optBase64(key: string): Uint8Array | undefined {
    const v = this.obj[key];
    // Go decodes JSON null into a nil []byte.
    if (v === undefined || v === null) return undefined;
    if (typeof v === 'string' && isStdBase64(v)) return Buffer.from(v, 'base64');
    this.bad(key, 'standard base64');
    return undefined;
  }

  result<T>(value: T): DecodeResult<T> {
    return this.error === null ? ok(value) : fail('bad_value', this.error);
  }
}

function isStdBase64(s: string): boolean {
  return s.length % 4 === 0 && /^[A-Za-z0-9+/]*={0,2}$/.test(s);
}

function fields(payload: Uint8Array): DecodeResult<Fields> {
  const obj = parseJsonObject(payload);
  return obj.ok ? ok(new Fields(obj.value)) : obj;
}

/** Each decoder takes a frame's JSON payload; required fields must be present with the right type. */
export function decodeSubmitRequest(payload: Uint8Array): DecodeResult<SubmitRequest> {
  const f = fields(payload);
  if (!f.ok) return f;
  const r = f.value;
  return r.result({
    taskId: r.taskId(),
    taskDescription: r.string('task_description'),
    fromAddr: r.string('from_addr'),
    toAddr: r.string('to_addr'),
  });
}

export function decodeSubmitResponse(payload: Uint8Array): DecodeResult<SubmitResponse> {
  const f = fields(payload);
  if (!f.ok) return f;
  const r = f.value;
  return r.result({ taskId: r.taskIdOrEmpty(), status: r.int('status'), message: r.string('message') });
}

export function decodeStatusUpdate(payload: Uint8Array): DecodeResult<StatusUpdate> {
  const f = fields(payload);
  if (!f.ok) return f;
  const r = f.value;
  return r.result({ taskId: r.taskId(), status: r.string('status'), justification: r.string('justification') });
}

export function decodeSendResults(payload: Uint8Array): DecodeResult<SendResults> {
  const f = fields(payload);
  if (!f.ok) return f;
  const r = f.value;
  const taskId = r.taskId();
  const resultType = r.string('result_type');
  if (r.error === null && resultType !== 'text' && resultType !== 'file')
    r.error = 'task field "result_type" must be "text" or "file"';
  const msg: SendResults = {
    taskId,
    resultType: resultType === 'file' ? 'file' : 'text',
    resultText: r.optString('result_text'),
    filename: r.optString('filename'),
    fileData: r.optBase64('file_data'),
    completedAt: r.string('completed_at'),
    timeIdleMs: r.optInt('time_idle_ms'),
    timeStagedMs: r.optInt('time_staged_ms'),
    timeCpuMs: r.optInt('time_cpu_ms'),
  };
  return r.result(stripUndefined(msg));
}

function stripUndefined<T extends object>(obj: T): T {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined)) as T;
}

/** Decodes a frame arriving at a daemon's task listener: SUBMIT (request), STATUS_UPDATE or SEND_RESULTS. */
export function decodeTaskRequest(frame: TypedFrame): DecodeResult<TaskRequest> {
  switch (frame.type) {
    case TaskFrameType.Submit: {
      const m = decodeSubmitRequest(frame.payload);
      return m.ok ? ok({ kind: 'Submit', message: m.value }) : m;
    }
    case TaskFrameType.StatusUpdate: {
      const m = decodeStatusUpdate(frame.payload);
      return m.ok ? ok({ kind: 'StatusUpdate', message: m.value }) : m;
    }
    case TaskFrameType.SendResults: {
      const m = decodeSendResults(frame.payload);
      return m.ok ? ok({ kind: 'SendResults', message: m.value }) : m;
    }
    default:
      return fail('bad_value', `unsupported task frame type ${frame.type}`);
  }
}

export function decodeTaskFrame(bytes: Uint8Array): DecodeResult<Decoded<TypedFrame>> {
  return decodeTypedFrame(bytes);
}

/** Incremental frame decoder; a declared length above 16 MiB fails with 'too_long' before buffering. */
export class TaskFrameDecoder extends TypedFrameDecoder {}

/**
 * Frames on port 1003 beyond the reference's four (PROTOCOL.md §9.5). A Go daemon never sends
 * them and never reads past its first frame, so they change nothing for a Go peer:
 *
 * - ACK (5): the receiver's answer to STATUS_UPDATE / SEND_RESULTS, `{task_id, status (200|400),
 *   message, receipt_signature?}`. A sender that sees the stream end without one (a Go peer)
 *   treats the frame as delivered.
 * - LOCAL (256) / LOCAL_EVENT (257): requests of the local CLI and SDK (`{op, …}` → `{ok, data}` or
 *   `{ok:false, code, message}`), accepted only on connections whose authenticated source is this
 *   node itself (the IPC socket), so the daemon's task service stays the single owner of the files.
 *
 * Extension fields on reference frames (ignored by Go): STATUS_UPDATE ACCEPTED carries
 * `accept_signature` and `accepted_at_ms`; SEND_RESULTS carries `receipt_signature`.
 */
export const ExtFrameType = { Ack: 5, Local: 256, LocalEvent: 257 } as const;

export function jsonFrame(type: number, json: JsonObject): Uint8Array {
  return encodeTypedFrame({ type, payload: encodeJson(json) });
}

export function payloadObject(frame: TypedFrame): JsonObject | undefined {
  const r = parseJsonObject(frame.payload);
  return r.ok ? r.value : undefined;
}

export interface Ack {
  readonly taskId: string;
  readonly status: number;
  readonly message: string;
  readonly receiptSignature?: string;
}

export function encodeAck(ack: Ack): Uint8Array {
  const json: JsonObject = { task_id: ack.taskId, status: ack.status, message: ack.message };
  if (ack.receiptSignature !== undefined) json.receipt_signature = ack.receiptSignature;
  return jsonFrame(ExtFrameType.Ack, json);
}

export function decodeAck(frame: TypedFrame): Ack | undefined {
  const o = payloadObject(frame);
  if (frame.type !== ExtFrameType.Ack || o === undefined) return undefined;
  if (typeof o.status !== 'number' || typeof o.message !== 'string') return undefined;
  return {
    taskId: typeof o.task_id === 'string' ? o.task_id : '',
    status: o.status,
    message: o.message,
    ...(typeof o.receipt_signature === 'string' ? { receiptSignature: o.receipt_signature } : {}),
  };
}

export function extString(frame: TypedFrame, key: string): string | undefined {
  const v = payloadObject(frame)?.[key];
  return typeof v === 'string' ? v : undefined;
}

export function extInt(frame: TypedFrame, key: string): number | undefined {
  const v = payloadObject(frame)?.[key];
  return typeof v === 'number' && Number.isSafeInteger(v) ? v : undefined;
}

export type LocalReply = { ok: true; data: JsonValue } | { ok: false; code: string; message: string; hint?: string };
