import { BASE_SEGMENT, decodeCaps, encodeCaps, type CapsAdvert } from '../protocol/caps.js';
import { IntervalLimiter } from '../tunnel/limits.js';

/**
 * Largest segment offered to and used with pilot-ts peers on the same host: a UDP datagram on
 * loopback carries 64 KiB, so, like TCP over a 64 KiB loopback MTU, a segment need not be cut to
 * the 4096 bytes the reference uses on every path. 15 × 4096 leaves room for every header.
 */
export const LOCAL_MAX_SEGMENT = 61_440;

/** What this node takes. */
const OWN = { maxSegment: LOCAL_MAX_SEGMENT, batch: true, synData: true } as const;

const QUERY_INTERVAL_MS = 5_000;
const ANSWER_INTERVAL_MS = 1_000;
const MAX_ENTRIES = 4096;

export interface PeerCapsOptions {
  /** Sends a capability advert (Control packet to port 1) to a node. */
  send: (node: number, payload: Uint8Array) => void;
  /** Whether the current path to a node carries large datagrams (direct, loopback). */
  pathAllowsLarge: (node: number) => boolean;
  /**
   * Applies what a node advertised to its connections: the segment size to use with a pilot-ts
   * node (BASE_SEGMENT where the path takes no more), which also says that it stops at a zero
   * window; 0 = the node is no longer known to be pilot-ts (back to the reference's defaults).
   */
  apply: (node: number, mss: number) => void;
  /** Turns sending PILM frames (several packets per datagram) to a node on or off. */
  batching: (node: number, on: boolean) => void;
  /** Turns sending a dial's first bytes in its SYN to a node on or off. */
  synData: (node: number, on: boolean) => void;
  now?: () => number;
  /** Runs `fn` after `ms` (default: an unref'd setTimeout); returns a cancel. */
  later?: (fn: () => void, ms: number) => () => void;
}

function unrefTimeout(fn: () => void, ms: number): () => void {
  const t = setTimeout(fn, ms);
  t.unref();
  return () => clearTimeout(t);
}

/**
 * Learns what pilot-ts peers take beyond the reference: segments larger than 4096 bytes, PILM
 * frames, data in a SYN, and a zero window honoured. On the first packet from a peer it asks once (a Go daemon
 * ignores the question and keeps the defaults); an answer raises the segment size only while the
 * path is one that carries large datagrams without fragmentation, turns batching on, and lets its
 * connections advertise a window of 0.
 */
export class PeerCaps {
  private readonly advertised = new Map<number, CapsAdvert>();
  private readonly asked = new IntervalLimiter<number>(QUERY_INTERVAL_MS, MAX_ENTRIES);
  /** At most one answer per node and second: a peer cannot make us send at its own rate. */
  private readonly answered = new IntervalLimiter<number>(ANSWER_INTERVAL_MS, MAX_ENTRIES);
  /**
   * Questions that came within a second of our last answer: each is answered once the second is
   * over. Dropping them would strand a peer whose copy of our answer was lost (e.g. dropped by its
   * trust gate an instant before it trusted us): it asks again only after its query interval.
   */
  private readonly owed = new Set<number>();
  private cancelOwed: (() => void) | undefined;
  private readonly now: () => number;
  private readonly later: (fn: () => void, ms: number) => () => void;

  constructor(private readonly o: PeerCapsOptions) {
    this.now = o.now ?? Date.now;
    this.later = o.later ?? unrefTimeout;
  }

  /** A packet arrived from a trusted peer: ask for its capabilities if we do not know them. */
  observe(node: number): void {
    if (this.advertised.has(node) || !this.asked.allow(node, this.now())) return;
    this.o.send(node, encodeCaps({ ...OWN, request: true }));
  }

  /**
   * A capability advert arrived. Malformed adverts are ignored, and so is a question from a node we
   * do not trust (nothing is told to it); its answer to a question of ours is taken, since the
   * question may have crossed our trusting it (our trust gate would drop the answer an instant too
   * early, and the node answers a repeated question only a second later).
   */
  onAdvert(node: number, payload: Uint8Array, trusted: boolean): void {
    const decoded = decodeCaps(payload);
    if (!decoded.ok) return;
    const { request } = decoded.value;
    if (!trusted && (request || this.asked.since(node, this.now()) >= QUERY_INTERVAL_MS)) return;
    if (request) this.answer(node);
    if (!this.advertised.has(node) && this.advertised.size >= MAX_ENTRIES)
      this.advertised.delete(this.advertised.keys().next().value as number);
    this.advertised.set(node, decoded.value);
    this.refresh(node);
  }

  private answer(node: number): void {
    if (this.answered.allow(node, this.now())) {
      this.owed.delete(node);
      this.o.send(node, encodeCaps({ ...OWN, request: false }));
      return;
    }
    if (this.owed.size >= MAX_ENTRIES) return;
    this.owed.add(node);
    this.cancelOwed ??= this.later(() => {
      this.cancelOwed = undefined;
      for (const owed of [...this.owed]) this.answer(owed);
    }, ANSWER_INTERVAL_MS);
  }

  /** Stops the timer of owed answers. */
  close(): void {
    this.cancelOwed?.();
    this.cancelOwed = undefined;
    this.owed.clear();
  }

  /** Re-decides a node's segment size and batching (its path may have changed, e.g. to the relay). */
  refresh(node: number): void {
    const advertised = this.advertised.get(node);
    if (advertised === undefined) return;
    const size = Math.min(advertised.maxSegment, LOCAL_MAX_SEGMENT);
    this.o.apply(node, size > BASE_SEGMENT && this.o.pathAllowsLarge(node) ? size : BASE_SEGMENT);
    this.o.batching(node, advertised.batch);
    this.o.synData(node, advertised.synData);
  }

  /**
   * The node became trusted: a question sent before it trusted us back was dropped by its trust
   * gate, so the next packet from it asks again at once instead of after the query interval.
   */
  retry(node: number): void {
    if (this.advertised.has(node)) return;
    this.asked.forget(node);
    this.answered.forget(node);
  }

  /** The peer restarted or went away: what it said no longer holds. */
  forget(node: number): void {
    this.owed.delete(node);
    this.asked.forget(node);
    this.answered.forget(node);
    if (!this.advertised.delete(node)) return;
    this.o.apply(node, 0);
    this.o.batching(node, false);
    this.o.synData(node, false);
  }

  /** The advertised segment size of a node, if it sent one. */
  advertisedBy(node: number): number | undefined {
    return this.advertised.get(node)?.maxSegment;
  }
}
