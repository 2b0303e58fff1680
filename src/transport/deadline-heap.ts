import type { Millis } from './types.js';

interface Entry<T> {
  at: Millis;
  readonly item: T;
  /** Position in the heap array. */
  index: number;
}

/**
 * The earliest deadline of many items, each of which moves its own deadline often: an indexed
 * binary heap with one entry per item, moved in place when the item's deadline changes (no
 * allocation per change).
 */
export class DeadlineHeap<T> {
  private readonly heap: Entry<T>[] = [];
  private readonly entries = new Map<T, Entry<T>>();

  get size(): number {
    return this.heap.length;
  }

  /** Sets (or with undefined removes) an item's deadline. */
  update(item: T, at: Millis | undefined): void {
    const e = this.entries.get(item);
    if (at === undefined) {
      if (e) this.removeEntry(e);
      return;
    }
    if (!e) {
      const entry: Entry<T> = { at, item, index: this.heap.length };
      this.entries.set(item, entry);
      this.heap.push(entry);
      this.up(entry);
      return;
    }
    if (at === e.at) return;
    const earlier = at < e.at;
    e.at = at;
    if (earlier) this.up(e);
    else this.down(e);
  }

  delete(item: T): void {
    const e = this.entries.get(item);
    if (e) this.removeEntry(e);
  }

  /** The earliest deadline, or undefined when no item has one. */
  peek(): Millis | undefined {
    return this.heap[0]?.at;
  }

  /** Removes and returns the items whose deadline is at or before `now`, earliest first. */
  takeDue(now: Millis): T[] {
    const due: T[] = [];
    for (let e = this.heap[0]; e && e.at <= now; e = this.heap[0]) {
      this.removeEntry(e);
      due.push(e.item);
    }
    return due;
  }

  private removeEntry(e: Entry<T>): void {
    this.entries.delete(e.item);
    const last = this.heap.pop() as Entry<T>;
    if (last === e) return;
    last.index = e.index;
    this.heap[e.index] = last;
    if (last.at < e.at) this.up(last);
    else this.down(last);
  }

  private up(e: Entry<T>): void {
    const h = this.heap;
    let i = e.index;
    while (i > 0) {
      const parentIndex = (i - 1) >> 1;
      const parent = h[parentIndex] as Entry<T>;
      if (parent.at <= e.at) break;
      h[i] = parent;
      parent.index = i;
      i = parentIndex;
    }
    h[i] = e;
    e.index = i;
  }

  private down(e: Entry<T>): void {
    const h = this.heap;
    const n = h.length;
    let i = e.index;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && (h[r] as Entry<T>).at < (h[l] as Entry<T>).at ? r : l;
      const child = h[c] as Entry<T>;
      if (child.at >= e.at) break;
      h[i] = child;
      child.index = i;
      i = c;
    }
    h[i] = e;
    e.index = i;
  }
}
