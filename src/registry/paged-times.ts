/** Ids per page: a page is 8 KiB of doubles. */
const PAGE_BITS = 10;
const PAGE_SIZE = 1 << PAGE_BITS;
const PAGE_MASK = PAGE_SIZE - 1;

/**
 * A time (a double, e.g. Unix ms) per u32 id, in pages of 1,024 doubles allocated on first use:
 * 8 bytes per id where ids are dense (registry node ids come from a counter), at most one page per
 * id where they are not. Absent is NaN. Beats a Map<number, number> by a wide margin: no entry
 * objects, no boxed doubles.
 */
export class PagedTimes {
  readonly #pages = new Map<number, Float64Array>();
  /** Ids holding a value, so that emptying a page can free it. */
  readonly #counts = new Map<number, number>();
  #size = 0;

  get(id: number): number | undefined {
    const value = this.#pages.get(id >>> PAGE_BITS)?.[id & PAGE_MASK];
    return value === undefined || Number.isNaN(value) ? undefined : value;
  }

  set(id: number, value: number): void {
    const index = id >>> PAGE_BITS;
    let page = this.#pages.get(index);
    if (page === undefined) {
      page = new Float64Array(PAGE_SIZE).fill(Number.NaN);
      this.#pages.set(index, page);
    }
    if (Number.isNaN(page[id & PAGE_MASK] as number)) {
      this.#counts.set(index, (this.#counts.get(index) ?? 0) + 1);
      this.#size++;
    }
    page[id & PAGE_MASK] = value;
  }

  delete(id: number): void {
    const index = id >>> PAGE_BITS;
    const page = this.#pages.get(index);
    if (page === undefined || Number.isNaN(page[id & PAGE_MASK] as number)) return;
    page[id & PAGE_MASK] = Number.NaN;
    this.#size--;
    const left = (this.#counts.get(index) ?? 1) - 1;
    if (left > 0) this.#counts.set(index, left);
    else {
      this.#counts.delete(index);
      this.#pages.delete(index);
    }
  }

  /** Removes every value for which `drop` is true. */
  deleteWhere(drop: (value: number) => boolean): void {
    for (const [index, page] of [...this.#pages]) {
      for (let i = 0; i < PAGE_SIZE; i++) {
        const value = page[i] as number;
        if (!Number.isNaN(value) && drop(value)) this.delete((index << PAGE_BITS) + i);
      }
    }
  }

  /** Calls `fn` with every value present. */
  forEachValue(fn: (value: number) => void): void {
    for (const page of this.#pages.values()) {
      for (let i = 0; i < PAGE_SIZE; i++) {
        const value = page[i] as number;
        if (!Number.isNaN(value)) fn(value);
      }
    }
  }

  get size(): number {
    return this.#size;
  }
}
