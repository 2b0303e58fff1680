import type { Duplex } from 'node:stream';
import { PilotError } from '../../errors.js';
import { DecodeError } from '../../protocol/result.js';
import { TaskFrameDecoder } from '../../protocol/tasksubmit.js';
import type { TypedFrame } from '../../protocol/typed-frame.js';

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
