import type { Duplex } from 'node:stream';
import { PilotError } from '../../errors.js';
import {
  DataFrameDecoder,
  DATA_MAX_PAYLOAD,
  DataType,
  encodeDataFrame,
  IDEMPOTENCY_KEY_TYPE,
} from '../../protocol/dataexchange.js';
import { encodeTypedFrameHeader } from '../../protocol/typed-frame.js';

export const MAX_REPLY_WAIT_MS = 30_000;

/** The sending side of one data-exchange connection: frames out, reply texts in. */
export class FrameChannel {
  private readonly decoder = new DataFrameDecoder();
  private readonly replies: string[] = [];
  private waiter: { resolve: (text: string) => void; reject: (err: Error) => void } | undefined;
  private failure: Error | undefined;

  constructor(private readonly conn: Duplex) {
    conn.on('data', (chunk: Buffer) => {
      for (const r of this.decoder.push(chunk)) {
        if (!r.ok) return this.fail(new PilotError('protocol', `bad reply frame: ${r.error.message}`));
        this.replies.push(Buffer.from(r.value.payload).toString('utf8'));
      }
      this.flush();
    });
    conn.once('end', () => this.fail(new PilotError('connection_failed', 'connection closed before the reply')));
    conn.once('close', () => this.fail(new PilotError('connection_failed', 'connection closed before the reply')));
    conn.once('error', (err: Error) =>
      this.fail(new PilotError('connection_failed', err.message, undefined, { cause: err })),
    );
  }

  /** Writes, waiting for the stream to drain when its buffer is full. */
  async write(chunk: Uint8Array): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.conn.write(chunk)) return;
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error): void => {
        this.conn.off('drain', onDrain).off('close', onClose);
        if (err) reject(err);
        else resolve();
      };
      const onDrain = (): void => done();
      const onClose = (): void =>
        done(this.failure ?? new PilotError('connection_failed', 'connection closed while sending'));
      this.conn.once('drain', onDrain).once('close', onClose);
    });
  }

  async sendFrame(type: number, payload: Uint8Array): Promise<void> {
    await this.write(encodeDataFrame({ type, payload }));
  }

  async sendKey(key: string): Promise<void> {
    await this.sendFrame(IDEMPOTENCY_KEY_TYPE, Buffer.from(key, 'ascii'));
  }

  /**
   * A FILE frame whose data is streamed from `chunks` (exactly `size` bytes) instead of being held
   * in memory; `onProgress` gets the data bytes sent so far.
   */
  async sendFileStream(
    name: string,
    size: number,
    chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    onProgress?: (sent: number) => void,
  ): Promise<void> {
    const nameBytes = Buffer.from(name, 'utf8');
    if (nameBytes.length > 0xffff) throw new PilotError('invalid_argument', 'file name too long');
    const payloadLength = 2 + nameBytes.length + size;
    if (payloadLength > DATA_MAX_PAYLOAD) throw tooLarge(size, 2 + nameBytes.length);
    const head = Buffer.allocUnsafe(2 + nameBytes.length);
    head.writeUInt16BE(nameBytes.length, 0);
    head.set(nameBytes, 2);
    await this.write(Buffer.concat([encodeTypedFrameHeader(DataType.File, payloadLength), head]));
    let sent = 0;
    for await (const chunk of chunks) {
      if (sent + chunk.length > size) throw new PilotError('internal', 'file grew while it was being sent');
      await this.write(chunk);
      sent += chunk.length;
      onProgress?.(sent);
    }
    if (sent !== size) throw new PilotError('internal', 'file shrank while it was being sent');
  }

  /** The next reply frame's text. */
  reply(timeoutMs = MAX_REPLY_WAIT_MS): Promise<string> {
    const queued = this.replies.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(new PilotError('timeout', `no reply from the data-exchange service within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiter = {
        resolve: (t) => {
          clearTimeout(timer);
          resolve(t);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
    });
  }

  close(): void {
    this.conn.end();
    this.conn.destroy();
  }

  private flush(): void {
    const w = this.waiter;
    const text = this.replies[0];
    if (w === undefined || text === undefined) return;
    this.replies.shift();
    this.waiter = undefined;
    w.resolve(text);
  }

  private fail(err: Error): void {
    if (this.failure === undefined) this.failure = err;
    if (this.replies.length > 0) return;
    const w = this.waiter;
    this.waiter = undefined;
    w?.reject(this.failure);
  }
}

/** `overhead`: payload bytes that are not data (a FILE frame's name header). */
export function tooLarge(size: number, overhead = 0): PilotError {
  const max = DATA_MAX_PAYLOAD - overhead;
  return new PilotError(
    'too_large',
    `${size} bytes is more than one data-exchange frame carries (${max} bytes here)`,
    'send it in several parts',
  );
}
