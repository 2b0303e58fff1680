import { type BlockPool, MAX_BLOCK_BYTES, MIN_BLOCK_BYTES } from './block-pool.js';
import { ByteQueue, VIEW_AT_LEAST } from './byte-queue.js';

interface Written {
  /** The pooled block the bytes were copied into; none for bytes handed over (`copy` false). */
  readonly block: Buffer | undefined;
  /** Bytes copied into the block so far. */
  used: number;
  /** Of those, bytes not yet acknowledged. */
  left: number;
}

/**
 * The bytes a stream has been given to send, from the oldest unacknowledged byte on. Written
 * bytes are copied, as a socket copies them, so the writer may reuse its buffer as soon as the
 * write is taken. They go into blocks of `pool`: a write of VIEW_AT_LEAST bytes or more into one
 * of its own, smaller ones one after another into a shared block, so that the segments view the
 * blocks without another copy. A block goes back to the pool once every byte written into it has
 * been acknowledged (`acknowledge`), when no segment can be sent from it again.
 */
export class SendBuffer {
  /** Bytes not yet sent. */
  readonly #unsent = new ByteQueue();
  /** The blocks written into, oldest first. */
  #written: Written[] = [];
  #head = 0;
  /** The block small writes go on into, while it has room and nothing larger came after it. */
  #smallTail: Written | undefined;

  constructor(private readonly pool: BlockPool) {}

  /** Bytes not yet sent. */
  get length(): number {
    return this.#unsent.length;
  }

  /**
   * Queues `data`. With `copy` false it is kept as it is, without a copy: the caller hands it over
   * and never changes it (one event batch written to many subscribers).
   */
  append(data: Uint8Array, copy = true): void {
    if (!copy) {
      if (data.length === 0) return;
      this.#unsent.push(data);
      this.#written.push({ block: undefined, used: data.length, left: data.length });
      this.#smallTail = undefined;
      return;
    }
    for (let at = 0; at < data.length; at += MAX_BLOCK_BYTES) {
      const piece = data.subarray(at, at + MAX_BLOCK_BYTES);
      const small = piece.length < VIEW_AT_LEAST;
      let into = small ? this.#smallTail : undefined;
      let block = into?.block;
      if (!into || !block || block.length - into.used < piece.length) {
        block = this.pool.take(small ? MIN_BLOCK_BYTES : piece.length);
        into = { block, used: 0, left: 0 };
        this.#written.push(into);
      }
      this.#smallTail = small ? into : undefined;
      const copied = block.subarray(into.used, into.used + piece.length);
      copied.set(piece);
      into.used += piece.length;
      into.left += piece.length;
      this.#unsent.pushFollowing(copied);
    }
  }

  /** As ByteQueue.peekPiece, over the bytes not yet sent. */
  peekPiece(n: number, viewAtLeast: number): Buffer {
    return this.#unsent.peekPiece(n, viewAtLeast);
  }

  /** Marks up to n bytes at the front of the unsent ones as sent. */
  skip(n: number): void {
    this.#unsent.skip(n);
  }

  /** Removes and returns up to n unsent bytes (marking them sent). */
  shift(n: number): Buffer {
    return this.#unsent.shift(n);
  }

  /** The oldest n sent bytes were acknowledged: blocks wholly acknowledged go back to the pool. */
  acknowledge(n: number): void {
    let left = n;
    while (left > 0 && this.#head < this.#written.length) {
      const w = this.#written[this.#head] as Written;
      const taken = Math.min(left, w.left);
      w.left -= taken;
      left -= taken;
      if (w.left > 0) break;
      if (w === this.#smallTail) this.#smallTail = undefined;
      if (w.block) this.pool.give(w.block);
      this.#head++;
    }
    if (this.#head > 64 && this.#head * 2 > this.#written.length) {
      this.#written = this.#written.slice(this.#head);
      this.#head = 0;
    }
  }

  /**
   * Forgets everything (the stream was reset). The blocks are left to the GC rather than reused:
   * packets already handed on may still be reading them.
   */
  clear(): void {
    this.#unsent.clear();
    this.#written = [];
    this.#head = 0;
    this.#smallTail = undefined;
  }
}
