export const REPLAY_WINDOW_SIZE = 256;

const MAX_U64 = 0xffff_ffff_ffff_ffffn;
const WINDOW = BigInt(REPLAY_WINDOW_SIZE);

export type ReplayVerdict = 'ok' | 'replay' | 'too_old';

/**
 * The 256-counter sliding window of PROTOCOL.md §3.4, with check and commit split so
 * that only frames that decrypted successfully are recorded:
 *
 *   if (w.check(c) !== 'ok') drop;  plaintext = open(...);  if (!plaintext) drop;  w.commit(c);
 *
 * Unlike the reference, a forged frame therefore cannot slide the window either.
 * Counter 0 is treated as already seen (senders start at 1), so it is never accepted.
 */
export class ReplayWindow {
  #max = 0n;
  readonly #bits = new Uint32Array(REPLAY_WINDOW_SIZE / 32);

  constructor() {
    this.#set(0n);
  }

  /** Highest committed counter (0 before the first commit). */
  get max(): bigint {
    return this.#max;
  }

  /** Whether `counter` would be accepted now; changes nothing. */
  check(counter: bigint): ReplayVerdict {
    assertU64(counter);
    if (counter > this.#max) return 'ok';
    if (this.#max - counter >= WINDOW) return 'too_old';
    return this.#has(counter) ? 'replay' : 'ok';
  }

  /** Records `counter` if it is still acceptable and returns the verdict it got. */
  commit(counter: bigint): ReplayVerdict {
    const verdict = this.check(counter);
    if (verdict !== 'ok') return verdict;
    if (counter > this.#max) {
      if (counter - this.#max >= WINDOW) {
        this.#bits.fill(0);
      } else {
        for (let c = this.#max + 1n; c < counter; c++) this.#clear(c);
      }
      this.#max = counter;
    }
    this.#set(counter);
    return 'ok';
  }

  #has(counter: bigint): boolean {
    const i = Number(counter % WINDOW);
    return ((this.#bits[i >>> 5] ?? 0) & (1 << (i & 31))) !== 0;
  }

  #set(counter: bigint): void {
    const i = Number(counter % WINDOW);
    this.#bits[i >>> 5] = (this.#bits[i >>> 5] ?? 0) | (1 << (i & 31));
  }

  #clear(counter: bigint): void {
    const i = Number(counter % WINDOW);
    this.#bits[i >>> 5] = (this.#bits[i >>> 5] ?? 0) & ~(1 << (i & 31));
  }
}

function assertU64(counter: bigint): void {
  if (counter < 0n || counter > MAX_U64) throw new RangeError(`replay counter out of u64 range: ${counter}`);
}
