/**
 * Virtual clock plus a priority queue of pending events. Events at the same instant come out
 * in the order they were scheduled, so a run is a pure function of its inputs.
 */

interface Entry<T> {
  readonly at: number;
  readonly seq: number;
  readonly item: T;
}

function before<T>(x: Entry<T>, y: Entry<T>): boolean {
  return x.at < y.at || (x.at === y.at && x.seq < y.seq);
}

export class Scheduler<T> {
  private heap: Entry<T>[] = [];
  private seq = 0;
  private clock: number;

  constructor(startTime = 0) {
    this.clock = startTime;
  }

  get now(): number {
    return this.clock;
  }

  get size(): number {
    return this.heap.length;
  }

  /** Schedules an item; a time in the past is clamped to now. */
  schedule(at: number, item: T): void {
    if (Number.isNaN(at)) throw new RangeError('cannot schedule at NaN');
    const entry: Entry<T> = { at: Math.max(at, this.clock), seq: this.seq++, item };
    const heap = this.heap;
    heap.push(entry);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent] as Entry<T>;
      if (!before(entry, p)) break;
      heap[i] = p;
      i = parent;
    }
    heap[i] = entry;
  }

  peekTime(): number | undefined {
    return this.heap[0]?.at;
  }

  /** Removes the earliest item and moves the clock to its time. */
  pop(): T | undefined {
    const heap = this.heap;
    const top = heap[0];
    if (top === undefined) return undefined;
    const last = heap.pop() as Entry<T>;
    if (heap.length > 0) {
      let i = 0;
      const n = heap.length;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        let child = l;
        if (r < n && before(heap[r] as Entry<T>, heap[l] as Entry<T>)) child = r;
        const c = heap[child] as Entry<T>;
        if (!before(c, last)) break;
        heap[i] = c;
        i = child;
      }
      heap[i] = last;
    }
    this.clock = top.at;
    return top.item;
  }

  /** Moves the clock forward without running anything (never backwards). */
  advanceTo(time: number): void {
    const next = this.peekTime();
    if (next !== undefined && next < time)
      throw new RangeError(`cannot advance to ${time}: an event is pending at ${next}`);
    if (time > this.clock) this.clock = time;
  }
}
