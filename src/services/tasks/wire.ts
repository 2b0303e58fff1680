import type { Duplex } from 'node:stream';
import { PilotError } from '../../errors.js';
import { encodeJson, parseJsonObject, type JsonObject, type JsonValue } from '../../protocol/json.js';
import { DecodeError } from '../../protocol/result.js';
import { TaskFrameDecoder } from '../../protocol/tasksubmit.js';
import { encodeTypedFrame, type TypedFrame } from '../../protocol/typed-frame.js';

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

export interface FrameReaderOptions {
  /**
   * On a framing error (a length over 16 MiB), stop reading but leave the connection open, so the
   * reader's owner can still write why before it closes. Default: the connection is destroyed.
   */
  readonly keepOpenOnError?: boolean;
}

/** Reads whole frames from a stream; at most one frame's worth (16 MiB) is ever buffered. */
export class FrameReader {
  readonly #frames: TypedFrame[] = [];
  readonly #decoder = new TaskFrameDecoder();
  /** The stream's first four bytes: the type of its first frame, known even when that frame is refused. */
  readonly #head = Buffer.alloc(4);
  #headLength = 0;
  #ended = false;
  #error: Error | undefined;
  #wake: (() => void) | undefined;

  constructor(
    private readonly conn: Duplex,
    options: FrameReaderOptions = {},
  ) {
    conn.on('data', (chunk: Buffer) => {
      if (this.#error instanceof DecodeError) return;
      if (this.#headLength < 4) this.#headLength += chunk.copy(this.#head, this.#headLength, 0, 4 - this.#headLength);
      for (const r of this.#decoder.push(chunk)) {
        if (r.ok) this.#frames.push(r.value);
        else {
          this.#error = r.error;
          if (options.keepOpenOnError === true) conn.pause();
          else conn.destroy();
        }
      }
      if (this.#frames.length > 0) conn.pause();
      this.#wake?.();
    });
    const end = (): void => {
      this.#ended = true;
      this.#wake?.();
    };
    conn.once('end', end).once('close', end);
    conn.on('error', (err: Error) => {
      this.#error ??= err;
      end();
    });
  }

  /** The type the stream's first frame declared, once its first four bytes arrived. */
  get firstType(): number | undefined {
    return this.#headLength === 4 ? this.#head.readUInt32BE(0) : undefined;
  }

  /** The next frame; null when the stream ended first. Rejects on a timeout or a framing error. */
  async next(timeoutMs: number): Promise<TypedFrame | null> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const f = this.#frames.shift();
      if (f !== undefined) {
        if (this.#frames.length === 0 && !(this.#error instanceof DecodeError)) this.conn.resume();
        return f;
      }
      if (this.#error instanceof DecodeError) throw new PilotError('protocol', `task stream: ${this.#error.message}`);
      if (this.#ended) return null;
      const left = deadline - Date.now();
      if (left <= 0) throw new PilotError('timeout', `no answer within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(timer);
          this.#wake = undefined;
          resolve();
        };
      });
    }
  }
}

/** Writes one frame and waits until it is handed to the transport. */
export function writeFrame(conn: Duplex, bytes: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    conn.write(bytes, (err) => (err ? reject(err) : resolve()));
  });
}

export type LocalReply = { ok: true; data: JsonValue } | { ok: false; code: string; message: string; hint?: string };
