/**
 * Counting and timing the deliveries of one pub/sub run, whatever system carries them.
 */

import { processCpuMs } from './lib.js';

export const EVENT_SIZE = 100;

/** How long a run may go without a single delivery before the missing events count as lost. */
const STALL_MS = 5000;

export interface Throughput {
  readonly delivered: number;
  readonly expected: number;
  /** Deliveries over the whole run: first publish to last delivery. */
  readonly eventsPerS: number;
  readonly seconds: number;
  /** CPU time of every process on the path (this one included) per delivered event. */
  readonly cpuUsPerEvent: number;
}

export interface Latency {
  readonly delivered: number;
  readonly expected: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

/**
 * A clock every process on the machine shares, in milliseconds (the monotonic clock behind
 * `process.hrtime`; `performance.timeOrigin` can differ by milliseconds between two processes).
 */
export const sharedNow = (): number => {
  const [s, ns] = process.hrtime();
  return s * 1e3 + ns / 1e6;
};

const localNow = (): number => performance.now();

/**
 * Deliveries across all subscribers of one run. Each payload starts with the publisher's reading
 * of `now` (big-endian double): `performance.now()` when publisher and subscribers share this
 * process, `sharedNow` when they run in two processes.
 */
export class Tally {
  delivered = 0;
  lastAt = 0;
  private readonly latencies: number[] = [];
  private waiter: (() => void) | undefined;
  constructor(
    private readonly keepLatency: boolean,
    /** Deliveries the run expects. */
    private readonly target: number,
    private readonly now: () => number = localNow,
  ) {}

  readonly record = (data: Uint8Array): void => {
    if (this.keepLatency) {
      const view = new DataView(data.buffer, data.byteOffset, 8);
      this.latencies.push(this.now() - view.getFloat64(0));
    }
    const n = ++this.delivered;
    // The clock is read at the last expected delivery (and now and then, for runs that lose some).
    if (n >= this.target || (n & 1023) === 0) this.lastAt = this.now();
    if (n >= this.target && this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w();
    }
  };

  /** Resolves when the expected events were delivered or none arrived for STALL_MS. */
  async settle(): Promise<void> {
    while (this.delivered < this.target) {
      const before = this.delivered;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, STALL_MS);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.waiter = undefined;
      if (this.delivered === before) return;
    }
  }

  throughput(startedAt: number, cpuMs: number): Throughput {
    return throughputOf(this.delivered, this.target, ((this.lastAt || this.now()) - startedAt) / 1000, cpuMs);
  }

  latency(): Latency {
    const expected = this.target;
    const sorted = [...this.latencies].sort((a, b) => a - b);
    return { delivered: this.delivered, expected, p50Ms: round(pick(sorted, 50)), p99Ms: round(pick(sorted, 99)) };
  }
}

/** The figures of a run that delivered `delivered` of `expected` events in `seconds`. */
export function throughputOf(delivered: number, expected: number, seconds: number, cpuMs: number): Throughput {
  const s = Math.max(1e-9, seconds);
  return {
    delivered,
    expected,
    eventsPerS: Math.round(delivered / s),
    seconds: s,
    cpuUsPerEvent: delivered > 0 ? round((cpuMs * 1000) / delivered, 2) : Number.NaN,
  };
}

function pick(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number;
}

export const round = (n: number, digits = 3): number => Math.round(n * 10 ** digits) / 10 ** digits;

/** A payload whose first 8 bytes are stamped with the current time just before each publish. */
export function stamp(payload: Buffer, now: () => number = localNow): Buffer {
  payload.writeDoubleBE(now(), 0);
  return payload;
}

/** A new stamped payload (a client may hold on to the bytes it is given until it writes them). */
export function stamped(): Buffer {
  return stamp(Buffer.alloc(EVENT_SIZE, 0x61));
}

/**
 * Publishes `events` events at `rate` per second (closed to the clock, not to deliveries): each
 * millisecond tick sends the events due by then, so bursts stay small.
 */
export async function paced(events: number, rate: number, send: (i: number) => Promise<void> | void): Promise<void> {
  const started = performance.now();
  let sent = 0;
  while (sent < events) {
    const due = Math.min(events, Math.floor(((performance.now() - started) / 1000) * rate) + 1);
    while (sent < due) await send(sent++);
    await new Promise((r) => setTimeout(r, 1));
  }
}

export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

/**
 * CPU time (user + system) used by this process and `pids` from now on; less sensitive to other
 * load on the machine than wall-clock rates.
 */
export function cpuMeter(pids: readonly (number | undefined)[]): () => number {
  const self = process.cpuUsage();
  const before = pids.map((pid) => processCpuMs(pid) ?? 0);
  return () => {
    const used = process.cpuUsage(self);
    const others = pids.reduce<number>((sum, pid, i) => sum + (processCpuMs(pid) ?? 0) - (before[i] as number), 0);
    return (used.user + used.system) / 1000 + others;
  };
}
