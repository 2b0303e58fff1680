/**
 * The dashboard's last hour in memory: one sample of the live counters every interval, in a ring
 * buffer, so that the page can draw nodes online, requests per second by type and handshakes
 * relayed over time. Nothing of it is stored; a restarted registry starts a new hour.
 */

export interface HistorySample {
  /** Unix ms. */
  readonly at: number;
  readonly online: number;
  /** Requests handled since the start, by type (cumulative). */
  readonly requests: ReadonlyMap<string, number>;
  /** Handshakes relayed since the start (cumulative). */
  readonly relayed: number;
}

/** `GET /api/history`: rates are over the interval that ends at the point's time. */
export interface HistoryJson {
  interval_secs: number;
  points: HistoryPoint[];
}

export interface HistoryPoint {
  /** Unix seconds. */
  t: number;
  online: number;
  /** Requests per second by type; types without requests in the interval are left out. */
  requests_per_s: Record<string, number>;
  /** Handshakes relayed during the interval. */
  handshakes_relayed: number;
}

export const HISTORY_SPAN_MS = 3600_000;

export class History {
  readonly #samples: (HistorySample | undefined)[];
  #next = 0;
  #size = 0;
  /** The last sample pushed out of the buffer: the start of the oldest point's interval. */
  #evicted: HistorySample | undefined;
  /** `toJSON()` serialised, until the next sample: every viewer polls, the data moves once an interval. */
  #text: string | undefined;

  constructor(readonly intervalMs: number) {
    this.#samples = new Array<HistorySample | undefined>(Math.max(1, Math.ceil(HISTORY_SPAN_MS / intervalMs)));
  }

  record(sample: HistorySample): void {
    this.#text = undefined;
    if (this.#size === this.#samples.length) this.#evicted = this.#samples[this.#next];
    this.#samples[this.#next] = sample;
    this.#next = (this.#next + 1) % this.#samples.length;
    this.#size = Math.min(this.#size + 1, this.#samples.length);
  }

  /** Oldest first. */
  samples(): HistorySample[] {
    const out: HistorySample[] = [];
    const start = (this.#next - this.#size + this.#samples.length) % this.#samples.length;
    for (let i = 0; i < this.#size; i++) {
      const sample = this.#samples[(start + i) % this.#samples.length];
      if (sample !== undefined) out.push(sample);
    }
    return out;
  }

  text(): string {
    this.#text ??= JSON.stringify(this.toJSON());
    return this.#text;
  }

  /** One point per sample; the very first sample, having no interval before it, has no rates. */
  toJSON(): HistoryJson {
    let previous = this.#evicted;
    const points: HistoryPoint[] = [];
    for (const sample of this.samples()) {
      points.push(pointBetween(previous ?? sample, sample));
      previous = sample;
    }
    return { interval_secs: this.intervalMs / 1000, points };
  }
}

const round = (n: number): number => Math.round(n * 1000) / 1000;

function pointBetween(from: HistorySample, to: HistorySample): HistoryPoint {
  const secs = (to.at - from.at) / 1000;
  const rates: Record<string, number> = {};
  if (secs > 0) {
    for (const [type, count] of to.requests) {
      // A counter lower than before means a restart of counting: the interval counts from zero.
      const before = from.requests.get(type) ?? 0;
      const delta = count >= before ? count - before : count;
      if (delta > 0) rates[type] = round(delta / secs);
    }
  }
  return {
    t: Math.floor(to.at / 1000),
    online: to.online,
    requests_per_s: rates,
    handshakes_relayed: to.relayed >= from.relayed ? to.relayed - from.relayed : to.relayed,
  };
}
