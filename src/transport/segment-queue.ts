import { seqAdd, seqLe } from './seq.js';
import type { Segment } from './sender-types.js';

/**
 * The segments a stream has sent and not had acknowledged, oldest first. Acknowledged ones leave
 * from the front by index and the array is compacted in bulk, so an ACK costs no copy. Indices
 * (`start` to `end`) stay valid until the next `shift`.
 */
export class SegmentQueue {
  #segs: Segment[] = [];
  #head = 0;

  get start(): number {
    return this.#head;
  }

  get end(): number {
    return this.#segs.length;
  }

  get size(): number {
    return this.#segs.length - this.#head;
  }

  get first(): Segment | undefined {
    return this.#segs[this.#head];
  }

  at(i: number): Segment {
    return this.#segs[i] as Segment;
  }

  push(s: Segment): void {
    this.#segs.push(s);
  }

  /** Drops the first segment (acknowledged). */
  shift(): void {
    this.#head++;
    if (this.#head > 256 && this.#head * 2 > this.#segs.length) {
      this.#segs = this.#segs.slice(this.#head);
      this.#head = 0;
    }
  }

  clear(): void {
    this.#segs = [];
    this.#head = 0;
  }

  /** Index of the first segment that ends after seq (binary search). */
  indexOf(seq: number): number {
    let lo = this.#head;
    let hi = this.#segs.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const s = this.#segs[mid] as Segment;
      if (seqLe(seqAdd(s.seq, s.data.length), seq)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** The oldest segment not SACKed. */
  firstUnsacked(): Segment | undefined {
    for (let i = this.#head; i < this.#segs.length; i++) if (!this.at(i).sacked) return this.at(i);
    return undefined;
  }

  /** The newest segment not SACKed. */
  lastUnsacked(): Segment | undefined {
    for (let i = this.#segs.length - 1; i >= this.#head; i--) if (!this.at(i).sacked) return this.at(i);
    return undefined;
  }

  /** The oldest segment deemed lost and not yet sent again. */
  firstLost(): Segment | undefined {
    for (let i = this.#head; i < this.#segs.length; i++) if (this.at(i).lost) return this.at(i);
    return undefined;
  }
}
