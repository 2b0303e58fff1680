import type { Prng } from './prng.js';

/** Impairments of one direction of a link. Probabilities are per packet, in [0, 1]. */
export interface LinkConfig {
  /** One-way propagation delay. */
  latencyMs: number;
  /** Standard deviation of an extra, order-preserving delay (a later packet never overtakes an earlier one through jitter). */
  jitterMs: number;
  /** Serialization rate; packets queue behind each other. 0 = infinite. */
  bandwidthBytesPerSec: number;
  /** Bytes waiting for (or in) serialization beyond which new packets are tail-dropped. Only with a finite bandwidth. */
  queueLimitBytes: number;
  loss: number;
  /** Probability that a packet gets an extra delay, letting later packets overtake it. */
  reorder: number;
  /** Upper bound of that extra delay (uniform in (0, reorderDelayMs]). */
  reorderDelayMs: number;
  duplicate: number;
  /** Probability that 1–3 random bits of the packet are flipped. */
  corrupt: number;
}

export const DEFAULT_LINK: Readonly<LinkConfig> = Object.freeze({
  latencyMs: 10,
  jitterMs: 0,
  bandwidthBytesPerSec: 0,
  queueLimitBytes: 64 * 1024 * 1024,
  loss: 0,
  reorder: 0,
  reorderDelayMs: 20,
  duplicate: 0,
  corrupt: 0,
});

export interface LinkStats {
  /** Packets handed to the link. */
  sent: number;
  /** Packets that decoded and reached the far node (duplicates included). */
  delivered: number;
  /** Random loss. */
  lost: number;
  /** Tail drops at a full queue. */
  queueDrops: number;
  /** Sent while partitioned, or in flight when a partition began. */
  partitionDrops: number;
  duplicated: number;
  reordered: number;
  corrupted: number;
  /** Corrupted packets the decoder rejected (checksum or length check). */
  caughtByChecksum: number;
  /** Corrupted packets that decoded anyway. Should stay 0. */
  checksumMisses: number;
  bytesSent: number;
  bytesDelivered: number;
}

function emptyStats(): LinkStats {
  return {
    sent: 0,
    delivered: 0,
    lost: 0,
    queueDrops: 0,
    partitionDrops: 0,
    duplicated: 0,
    reordered: 0,
    corrupted: 0,
    caughtByChecksum: 0,
    checksumMisses: 0,
    bytesSent: 0,
    bytesDelivered: 0,
  };
}

/** A copy of a packet on its way across the link. */
export interface InFlight {
  readonly arriveAt: number;
  readonly bytes: Uint8Array;
  readonly corrupted: boolean;
  readonly duplicate: boolean;
  readonly reordered: boolean;
  /** The partition epoch at send time; a partition starting in between drops the packet. */
  readonly epoch: number;
}

export type DropReason = 'loss' | 'queue' | 'partition';

export interface TransmitResult {
  readonly copies: InFlight[];
  readonly dropped?: DropReason;
}

/** Flips `count` distinct random bits of a copy of the bytes. */
export function flipBits(bytes: Uint8Array, count: number, rng: Prng): Uint8Array {
  const out = Uint8Array.prototype.slice.call(bytes);
  const totalBits = out.length * 8;
  const chosen = new Set<number>();
  while (chosen.size < Math.min(count, totalBits)) chosen.add(rng.int(totalBits));
  for (const bit of chosen) out[bit >> 3] = ((out[bit >> 3] as number) ^ (1 << (bit & 7))) & 0xff;
  return out;
}

/**
 * One direction of a link. It decides, at send time, what happens to each packet: whether it is
 * dropped, how long it queues behind earlier packets, when it arrives, and whether it is
 * duplicated, delayed out of order or corrupted. The owner schedules the returned copies.
 */
export class Link {
  readonly stats: LinkStats = emptyStats();
  private cfg: LinkConfig;
  private partitioned = false;
  private epoch = 0;
  /** When the transmitter finishes serializing everything queued so far. */
  private busyUntil = 0;
  /** Finish times and sizes of packets still in the transmit queue, oldest first. */
  private queue: { finish: number; size: number }[] = [];
  private queueHead = 0;
  private queuedBytes = 0;
  /** Latest arrival of an in-order packet: jitter never lets a packet arrive before it. */
  private lastArrival = 0;

  constructor(
    readonly name: string,
    config: Partial<LinkConfig>,
    private readonly rng: Prng,
  ) {
    this.cfg = validate({ ...DEFAULT_LINK, ...config });
  }

  get config(): Readonly<LinkConfig> {
    return this.cfg;
  }

  get isPartitioned(): boolean {
    return this.partitioned;
  }

  /** Changes impairments from now on; packets already in flight keep their fate. */
  configure(config: Partial<LinkConfig>): void {
    this.cfg = validate({ ...this.cfg, ...config });
  }

  /** Drops everything sent from now on, and everything still in flight or queued. */
  partition(now: number): void {
    this.partitioned = true;
    this.epoch++;
    this.queue = [];
    this.queueHead = 0;
    this.queuedBytes = 0;
    this.busyUntil = now;
  }

  heal(_now: number): void {
    this.partitioned = false;
  }

  transmit(bytes: Uint8Array, now: number): TransmitResult {
    this.stats.sent++;
    this.stats.bytesSent += bytes.length;
    if (this.partitioned) {
      this.stats.partitionDrops++;
      return { copies: [], dropped: 'partition' };
    }
    if (this.rng.chance(this.cfg.loss)) {
      this.stats.lost++;
      return { copies: [], dropped: 'loss' };
    }
    const first = this.enqueue(bytes, now, false);
    if (first === undefined) {
      this.stats.queueDrops++;
      return { copies: [], dropped: 'queue' };
    }
    const copies = [first];
    if (this.rng.chance(this.cfg.duplicate)) {
      const dup = this.enqueue(bytes, now, true);
      if (dup === undefined) {
        this.stats.queueDrops++;
      } else {
        this.stats.duplicated++;
        copies.push(dup);
      }
    }
    return { copies };
  }

  /** Called when a copy reaches the far end: false if a partition swallowed it meanwhile. */
  arrive(copy: InFlight): boolean {
    if (copy.epoch !== this.epoch || this.partitioned) {
      this.stats.partitionDrops++;
      return false;
    }
    return true;
  }

  /** Records what the receiver's decoder made of an arrived copy. */
  recordDecoded(copy: InFlight, decodedOk: boolean): void {
    if (!decodedOk) {
      if (copy.corrupted) this.stats.caughtByChecksum++;
      return;
    }
    if (copy.corrupted) this.stats.checksumMisses++;
    this.stats.delivered++;
    this.stats.bytesDelivered += copy.bytes.length;
  }

  private enqueue(original: Uint8Array, now: number, duplicate: boolean): InFlight | undefined {
    const cfg = this.cfg;
    let departAt = now;
    if (cfg.bandwidthBytesPerSec > 0) {
      this.drainQueue(now);
      if (this.queuedBytes + original.length > cfg.queueLimitBytes) return undefined;
      const start = Math.max(now, this.busyUntil);
      departAt = start + (original.length * 1000) / cfg.bandwidthBytesPerSec;
      this.busyUntil = departAt;
      this.queue.push({ finish: departAt, size: original.length });
      this.queuedBytes += original.length;
    }
    let arriveAt = departAt + cfg.latencyMs;
    if (cfg.jitterMs > 0) arriveAt += Math.abs(this.rng.normal(0, cfg.jitterMs));
    const reordered = this.rng.chance(cfg.reorder);
    if (reordered) {
      this.stats.reordered++;
      arriveAt += cfg.reorderDelayMs * (1 - this.rng.next());
    } else {
      arriveAt = Math.max(arriveAt, this.lastArrival);
      this.lastArrival = arriveAt;
    }
    let bytes = original;
    const corrupted = this.rng.chance(cfg.corrupt);
    if (corrupted) {
      this.stats.corrupted++;
      bytes = flipBits(original, 1 + this.rng.int(3), this.rng);
    }
    return { arriveAt, bytes, corrupted, duplicate, reordered, epoch: this.epoch };
  }

  private drainQueue(now: number): void {
    const q = this.queue;
    while (this.queueHead < q.length) {
      const head = q[this.queueHead] as { finish: number; size: number };
      if (head.finish > now) break;
      this.queuedBytes -= head.size;
      this.queueHead++;
    }
    if (this.queueHead > 1024 && this.queueHead * 2 > q.length) {
      this.queue = q.slice(this.queueHead);
      this.queueHead = 0;
    }
  }
}

function validate(cfg: LinkConfig): LinkConfig {
  for (const key of ['loss', 'reorder', 'duplicate', 'corrupt'] as const) {
    const p = cfg[key];
    if (!(p >= 0 && p <= 1)) throw new RangeError(`link ${key} must be a probability: ${p}`);
  }
  for (const key of ['latencyMs', 'jitterMs', 'bandwidthBytesPerSec', 'queueLimitBytes', 'reorderDelayMs'] as const) {
    const v = cfg[key];
    if (!(v >= 0) || !Number.isFinite(v)) throw new RangeError(`link ${key} must be a non-negative number: ${v}`);
  }
  return cfg;
}
