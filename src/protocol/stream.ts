import { type DecodeError, fail, ok, type DecodeResult } from './result.js';

/**
 * A FIFO of bytes kept as a list of chunks. Chunks appended as "borrowed" are referenced, not
 * copied, until `own()` copies whatever of them is still queued.
 */
export class ByteQueue {
  private chunks: Uint8Array[] = [];
  private borrowed: boolean[] = [];
  /** Read offset into chunks[0]. */
  private offset = 0;
  private total = 0;

  get length(): number {
    return this.total;
  }

  append(chunk: Uint8Array, borrow = false): void {
    if (chunk.length === 0) return;
    this.chunks.push(borrow ? chunk : Buffer.from(chunk));
    this.borrowed.push(borrow);
    this.total += chunk.length;
  }

  /** Copies every borrowed chunk still queued so that the caller may reuse its memory. */
  own(): void {
    for (let i = 0; i < this.chunks.length; i++) {
      if (!this.borrowed[i]) continue;
      const chunk = this.chunks[i] as Uint8Array;
      const start = i === 0 ? this.offset : 0;
      this.chunks[i] = Buffer.from(chunk.subarray(start));
      this.borrowed[i] = false;
      if (i === 0) this.offset = 0;
    }
  }

  clear(): void {
    this.chunks = [];
    this.borrowed = [];
    this.offset = 0;
    this.total = 0;
  }

  /** The byte at position i; the caller guarantees i < length. */
  byteAt(i: number): number {
    let pos = i + this.offset;
    for (const chunk of this.chunks) {
      if (pos < chunk.length) return chunk[pos] as number;
      pos -= chunk.length;
    }
    throw new RangeError(`byteAt(${i}) past the end of ${this.total} queued bytes`);
  }

  readUint16(i: number): number {
    const first = this.chunks[0];
    const at = i + this.offset;
    if (first !== undefined && at + 2 <= first.length) return ((first[at] as number) << 8) | (first[at + 1] as number);
    return (this.byteAt(i) << 8) | this.byteAt(i + 1);
  }

  readUint32(i: number): number {
    const first = this.chunks[0];
    const at = i + this.offset;
    if (first !== undefined && at + 4 <= first.length) {
      return (
        (((first[at] as number) << 24) |
          ((first[at + 1] as number) << 16) |
          ((first[at + 2] as number) << 8) |
          (first[at + 3] as number)) >>>
        0
      );
    }
    return ((this.byteAt(i) << 24) | (this.byteAt(i + 1) << 16) | (this.byteAt(i + 2) << 8) | this.byteAt(i + 3)) >>> 0;
  }

  /**
   * Removes the first n bytes (n ≤ length). Bytes that lie in one chunk come back as a view of
   * it (no copy), others in a new Buffer.
   */
  take(n: number): Buffer {
    if (n > this.total) throw new RangeError(`take(${n}) with only ${this.total} bytes queued`);
    const first = this.chunks[0];
    if (first !== undefined && first.length - this.offset >= n) {
      const view = Buffer.from(first.buffer, first.byteOffset + this.offset, n);
      this.advance(n);
      return view;
    }
    const out = Buffer.allocUnsafe(n);
    let written = 0;
    while (written < n) {
      const chunk = this.chunks[0] as Uint8Array;
      const count = Math.min(n - written, chunk.length - this.offset);
      out.set(chunk.subarray(this.offset, this.offset + count), written);
      written += count;
      this.advance(count);
    }
    return out;
  }

  /** Whether the queued bytes from position i on start with `bytes` (the caller guarantees i + bytes.length ≤ length). */
  equalsAt(i: number, bytes: Uint8Array): boolean {
    const first = this.chunks[0];
    const at = i + this.offset;
    if (first !== undefined && at + bytes.length <= first.length) {
      for (let k = 0; k < bytes.length; k++) if (first[at + k] !== bytes[k]) return false;
      return true;
    }
    for (let k = 0; k < bytes.length; k++) if (this.byteAt(i + k) !== bytes[k]) return false;
    return true;
  }

  /** Discards the first n bytes (n ≤ length). */
  skip(n: number): void {
    if (n > this.total) throw new RangeError(`skip(${n}) with only ${this.total} bytes queued`);
    const first = this.chunks[0];
    if (first !== undefined && this.offset + n < first.length) {
      this.offset += n;
      this.total -= n;
      return;
    }
    let left = n;
    while (left > 0) {
      const chunk = this.chunks[0] as Uint8Array;
      const count = Math.min(left, chunk.length - this.offset);
      left -= count;
      this.advance(count);
    }
  }

  private advance(count: number): void {
    this.offset += count;
    this.total -= count;
    if (this.offset === (this.chunks[0] as Uint8Array).length) {
      this.chunks.shift();
      this.borrowed.shift();
      this.offset = 0;
    }
  }
}

/**
 * Decodes one item from the front of the queue. Returns null when more bytes are needed (having
 * consumed at most bytes that carry no item, such as an empty frame). A failure ends the stream
 * (the framing is lost).
 * Implementations must check every declared length against the protocol maximum before waiting
 * for (or allocating) that many bytes.
 */
export type FrameStep<T> = (queue: ByteQueue) => DecodeResult<T> | null;

/**
 * Incremental decoder: push chunks as they arrive and get back every item they complete.
 * Complete items are extracted during push, so at most one partial frame is held between calls.
 * After the first failure every push returns that same failure.
 */
export class StreamDecoder<T> {
  private readonly queue = new ByteQueue();
  private failure: DecodeError | null = null;

  constructor(private readonly step: FrameStep<T>) {}

  /**
   * Items completed by this chunk; if the last element is a failure the stream is unusable.
   * Items may be views of `chunk` (as socket reads are never reused): do not modify it later.
   */
  push(chunk: Uint8Array): DecodeResult<T>[] {
    if (this.failure) return [{ ok: false, error: this.failure }];
    const out: DecodeResult<T>[] = [];
    this.queue.append(chunk, true);
    for (;;) {
      const result = this.step(this.queue);
      if (result === null) break;
      out.push(result);
      if (!result.ok) {
        this.failure = result.error;
        this.queue.clear();
        return out;
      }
    }
    this.queue.own();
    return out;
  }

  /** Bytes held for a frame that is not complete yet. */
  get buffered(): number {
    return this.queue.length;
  }

  /** The failure that ended the stream, if any. */
  get error(): DecodeError | null {
    return this.failure;
  }
}

export interface Decoded<T> {
  readonly value: T;
  /** Bytes consumed from the start of the input. */
  readonly length: number;
}

/** Decodes the first item of a complete buffer with a stream step; trailing bytes are left alone. */
export function decodeFirst<T>(step: FrameStep<T>, bytes: Uint8Array, what: string): DecodeResult<Decoded<T>> {
  const queue = new ByteQueue();
  queue.append(bytes, true);
  const result = step(queue);
  if (result === null) return fail('truncated', `${what} truncated`);
  if (!result.ok) return result;
  return ok({ value: result.value, length: bytes.length - queue.length });
}
