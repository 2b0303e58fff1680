import type { Millis } from './types.js';

interface Entry<T> {
  at: Millis;
  item: T;
}

/**
 * The earliest deadline of many items, each of which moves its own deadline often. An item is
 * re-filed only when its deadline changes (`update`); the entry it had stays in the heap and is
 * skipped once it surfaces (it no longer matches the item's current deadline). Entries left behind
 * that way are purged by a rebuild when they outnumber the live ones.
 */
export class DeadlineHeap<T> {
  private heap: Entry<T>[] = [];
  private readonly current = new Map<T, Millis>();

  get size(): number {
    return this.current.size;
  }

  /** Sets (or with undefined removes) an item's deadline. */
  update(item: T, at: Millis | undefined): void {
    const was = this.current.get(item);
    if (at === undefined) {
      if (was !== undefined) this.current.delete(item);
      return;
    }
    if (was === at) return;
    this.current.set(item, at);
    this.push({ at, item });
    if (this.heap.length > 2 * this.current.size + 64) this.rebuild();
  }

  delete(item: T): void {
    this.current.delete(item);
  }

  /** The earliest deadline, or undefined when no item has one. */
  peek(): Millis | undefined {
    return this.top()?.at;
  }

  /** Removes and returns the items whose deadline is at or before `now`, earliest first. */
  takeDue(now: Millis): T[] {
    const due: T[] = [];
    for (let e = this.top(); e && e.at <= now; e = this.top()) {
      this.pop();
      this.current.delete(e.item);
      due.push(e.item);
    }
    return due;
  }

  /** The first entry that still matches its item (stale entries on the way are dropped). */
  private top(): Entry<T> | undefined {
    for (;;) {
      const e = this.heap[0];
      if (e === undefined || this.current.get(e.item) === e.at) return e;
      this.pop();
    }
  }

  private rebuild(): void {
    this.heap = [];
    for (const [item, at] of this.current) this.push({ at, item });
  }

  private push(e: Entry<T>): void {
    const h = this.heap;
    let i = h.length;
    h.push(e);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = h[parent] as Entry<T>;
      if (p.at <= e.at) break;
      h[i] = p;
      i = parent;
    }
    h[i] = e;
  }

  private pop(): void {
    const h = this.heap;
    const last = h.pop();
    if (last === undefined || h.length === 0) return;
    let i = 0;
    const n = h.length;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && (h[r] as Entry<T>).at < (h[l] as Entry<T>).at ? r : l;
      if ((h[c] as Entry<T>).at >= last.at) break;
      h[i] = h[c] as Entry<T>;
      i = c;
    }
    h[i] = last;
  }
}
