/** The smallest and largest pooled block; a request is rounded up to the next power of two. */
export const MIN_BLOCK_BYTES = 16 * 1024;
export const MAX_BLOCK_BYTES = 1024 * 1024;
/** Free blocks kept for reuse, all sizes together, by default. */
const DEFAULT_MAX_IDLE_BYTES = 16 * 1024 * 1024;

/**
 * Buffers for the bytes streams have been given to send and the peer has not acknowledged yet,
 * reused once acknowledged. A fresh buffer per write would be held for a round trip or more,
 * long enough for V8 to promote it, and V8 starts a full collection for every 64 MB of such
 * buffers: a bulk sender ran one every few tens of MiB. Reused blocks live in the old generation
 * and cost no collection. At most `maxIdleBytes` of free blocks are kept; the rest go to the GC.
 */
export class BlockPool {
  readonly #free = new Map<number, Buffer[]>();
  #idleBytes = 0;

  constructor(readonly maxIdleBytes = DEFAULT_MAX_IDLE_BYTES) {}

  get idleBytes(): number {
    return this.#idleBytes;
  }

  /** A block of at least `bytes` (≤ MAX_BLOCK_BYTES); its contents are whatever was there before. */
  take(bytes: number): Buffer {
    const size = blockSize(bytes);
    const block = this.#free.get(size)?.pop();
    if (block) {
      this.#idleBytes -= size;
      return block;
    }
    return Buffer.allocUnsafeSlow(size);
  }

  /** Returns a block from `take`; nothing may read or write it afterwards. */
  give(block: Buffer): void {
    const size = block.length;
    if (blockSize(size) !== size || this.#idleBytes + size > this.maxIdleBytes) return;
    let list = this.#free.get(size);
    if (!list) {
      list = [];
      this.#free.set(size, list);
    }
    list.push(block);
    this.#idleBytes += size;
  }
}

function blockSize(bytes: number): number {
  if (bytes > MAX_BLOCK_BYTES) throw new RangeError(`block of ${bytes} bytes exceeds ${MAX_BLOCK_BYTES}`);
  let size = MIN_BLOCK_BYTES;
  while (size < bytes) size *= 2;
  return size;
}

/** The pool the streams of this process share. */
export const sharedBlockPool = new BlockPool();
