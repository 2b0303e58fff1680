import { Prng } from './prng.js';

const CHUNK = 64 * 1024;

/**
 * A deterministic pseudo-random byte stream of a given length, produced in chunks. The bytes
 * depend only on the seed, not on how the stream is chunked.
 */
export class PayloadStream {
  private readonly rng: Prng;
  private produced = 0;
  private block = new Uint8Array(0);
  private blockOffset = 0;

  constructor(
    seed: number,
    readonly length: number,
  ) {
    this.rng = new Prng(seed).fork('payload');
  }

  get remaining(): number {
    return this.length - this.produced;
  }

  /** The next chunk (at most `max` bytes), or null at the end. */
  nextChunk(max = CHUNK): Uint8Array | null {
    const n = Math.min(max, this.remaining);
    if (n <= 0) return null;
    const buf = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      if (this.blockOffset >= this.block.length) {
        this.block = new Uint8Array(CHUNK);
        this.rng.fill(this.block);
        this.blockOffset = 0;
      }
      const take = Math.min(n - filled, this.block.length - this.blockOffset);
      buf.set(this.block.subarray(this.blockOffset, this.blockOffset + take), filled);
      filled += take;
      this.blockOffset += take;
    }
    this.produced += n;
    return buf;
  }
}

/**
 * Compares received bytes against the expected stream as they arrive, so multi-megabyte
 * transfers need no full copy of either side.
 */
export class PayloadVerifier {
  private readonly expected: PayloadStream;
  private pending: Uint8Array = new Uint8Array(0);
  private pendingOffset = 0;
  /** Bytes seen so far. */
  received = 0;
  /** Offset of the first byte that differed, or of the first byte beyond the expected length. */
  firstMismatch: number | null = null;

  constructor(seed: number, length: number) {
    this.expected = new PayloadStream(seed, length);
  }

  push(data: Uint8Array): void {
    let i = 0;
    while (i < data.length) {
      if (this.pendingOffset >= this.pending.length) {
        const next = this.expected.nextChunk();
        if (next === null) {
          this.firstMismatch ??= this.received;
          this.received += data.length - i;
          return;
        }
        this.pending = next;
        this.pendingOffset = 0;
      }
      const n = Math.min(data.length - i, this.pending.length - this.pendingOffset);
      if (this.firstMismatch === null) {
        for (let k = 0; k < n; k++) {
          if (data[i + k] !== this.pending[this.pendingOffset + k]) {
            this.firstMismatch = this.received + k;
            break;
          }
        }
      }
      i += n;
      this.pendingOffset += n;
      this.received += n;
    }
  }

  /** True when exactly the expected bytes arrived. */
  complete(): boolean {
    return this.firstMismatch === null && this.received === this.expected.length;
  }
}
