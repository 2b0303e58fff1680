/**
 * Chunks of at least this size are handed on as views (a read, or a segment of their own); smaller
 * ones are merged by copying.
 */
export const VIEW_AT_LEAST = 16 * 1024;

/** A FIFO of byte chunks that hands out slices without copying more than needed. */
export class ByteQueue {
  private chunks: Buffer[] = [];
  private head = 0;
  private headOffset = 0;
  private total = 0;

  get length(): number {
    return this.total;
  }

  push(data: Uint8Array): void {
    if (data.length === 0) return;
    this.chunks.push(Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    this.total += data.length;
  }

  /**
   * Appends bytes that directly follow the last chunk in the same memory: that chunk grows
   * instead (a later piece of it can then go out without a merging copy).
   */
  pushFollowing(data: Buffer): void {
    const last = this.chunks.length > this.head ? this.chunks[this.chunks.length - 1] : undefined;
    if (last && last.buffer === data.buffer && last.byteOffset + last.length === data.byteOffset) {
      this.chunks[this.chunks.length - 1] = Buffer.from(last.buffer, last.byteOffset, last.length + data.length);
      this.total += data.length;
      return;
    }
    this.push(data);
  }

  /** Looks at up to n bytes from the front without consuming them. */
  peek(n: number): Buffer {
    return this.take(n, false);
  }

  /**
   * Looks at up to n bytes from the front without consuming them; when the first chunk alone
   * holds at least `viewAtLeast` bytes, only (part of) that chunk, as a view (see shiftPiece).
   */
  peekPiece(n: number, viewAtLeast: number): Buffer {
    const first = this.chunks[this.head];
    if (first !== undefined) {
      const avail = first.length - this.headOffset;
      if (avail >= viewAtLeast || avail >= n)
        return first.subarray(this.headOffset, this.headOffset + Math.min(avail, n));
    }
    return this.take(n, false);
  }

  /** Removes and returns up to n bytes from the front. */
  shift(n: number): Buffer {
    return this.take(n, true);
  }

  /**
   * Removes and returns up to n bytes. When the first chunk alone holds at least `viewAtLeast`
   * bytes, only (part of) that chunk is returned, as a view: large segments are handed on without
   * copying, while small ones are still merged into one piece.
   */
  shiftPiece(n: number, viewAtLeast: number): Buffer {
    const first = this.chunks[this.head];
    if (first !== undefined) {
      const avail = first.length - this.headOffset;
      if (avail >= viewAtLeast || avail >= n) {
        const out = first.subarray(this.headOffset, this.headOffset + Math.min(avail, n));
        this.advance(out.length);
        return out;
      }
    }
    return this.take(n, true);
  }

  /** Discards up to n bytes from the front. */
  skip(n: number): void {
    this.advance(Math.min(n, this.total));
  }

  clear(): void {
    this.chunks = [];
    this.head = 0;
    this.headOffset = 0;
    this.total = 0;
  }

  private take(n: number, consume: boolean): Buffer {
    const want = Math.min(n, this.total);
    if (want === 0) return Buffer.alloc(0);
    const first = this.chunks[this.head] as Buffer;
    const firstAvail = first.length - this.headOffset;
    let out: Buffer;
    if (firstAvail >= want) {
      out = first.subarray(this.headOffset, this.headOffset + want);
      if (consume) this.advance(want);
      return out;
    }
    out = Buffer.allocUnsafe(want);
    let copied = 0;
    let idx = this.head;
    let off = this.headOffset;
    while (copied < want) {
      const chunk = this.chunks[idx] as Buffer;
      const n2 = Math.min(chunk.length - off, want - copied);
      chunk.copy(out, copied, off, off + n2);
      copied += n2;
      idx++;
      off = 0;
    }
    if (consume) this.advance(want);
    return out;
  }

  private advance(n: number): void {
    this.total -= n;
    let left = n;
    while (left > 0) {
      const chunk = this.chunks[this.head] as Buffer;
      const avail = chunk.length - this.headOffset;
      if (avail > left) {
        this.headOffset += left;
        return;
      }
      left -= avail;
      this.head++;
      this.headOffset = 0;
    }
    if (this.head > 64 && this.head * 2 > this.chunks.length) {
      this.chunks = this.chunks.slice(this.head);
      this.head = 0;
    }
  }
}
