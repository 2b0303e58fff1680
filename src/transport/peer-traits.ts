import { MAX_MSS } from './options.js';

/** What a peer node told us it takes beyond the reference (its capability advert). */
export interface PeerTrait {
  /** Largest segment to send it; undefined: the connection default. */
  readonly mss?: number;
  /** It stops sending at a zero window. */
  readonly zeroWindow?: boolean;
  /** It takes a dial's first bytes in the SYN. */
  readonly synData?: boolean;
}

const NONE: PeerTrait = {};

/** Per-node traits, for at most `max` nodes (the oldest entry gives way). */
export class PeerTraits {
  readonly #byNode = new Map<number, PeerTrait>();

  constructor(private readonly max = 4096) {}

  of(node: number): PeerTrait {
    return this.#byNode.get(node) ?? NONE;
  }

  /** Changes some traits of `node`; an undefined or false value forgets that trait. */
  update(node: number, change: PeerTrait): void {
    if (change.mss !== undefined && (!Number.isInteger(change.mss) || change.mss < 16 || change.mss > MAX_MSS))
      throw new RangeError(`mss out of range: ${change.mss}`);
    const merged: { -readonly [K in keyof PeerTrait]: PeerTrait[K] } = { ...this.of(node), ...change };
    for (const key of Object.keys(merged) as (keyof PeerTrait)[])
      if (merged[key] === undefined || merged[key] === false) delete merged[key];
    this.#byNode.delete(node);
    if (Object.keys(merged).length === 0) return;
    if (this.#byNode.size >= this.max) this.#byNode.delete(this.#byNode.keys().next().value as number);
    this.#byNode.set(node, merged);
  }
}
