import { abortError } from './abort.js';

/**
 * A bounded FIFO consumed by one async iterator. `push` refuses items when full (the caller
 * decides what dropping means); `end` finishes the iteration after the queued items, `fail` at once.
 */
export class AsyncQueue<T> implements AsyncIterableIterator<T> {
  private readonly items: T[] = [];
  private waiter: { resolve: (r: IteratorResult<T>) => void; reject: (e: unknown) => void } | null = null;
  private ended = false;
  private failure: unknown = null;
  private readonly onAbort = (): void => this.fail(abortError(this.signal as AbortSignal));

  constructor(
    readonly capacity: number,
    private readonly signal?: AbortSignal,
    private readonly onFinish?: () => void,
  ) {
    if (signal?.aborted) {
      // Finished from the start; onFinish is not called since the owner has not registered it yet.
      this.failure = abortError(signal);
      this.ended = true;
    } else {
      signal?.addEventListener('abort', this.onAbort, { once: true });
    }
  }

  get size(): number {
    return this.items.length;
  }

  get finished(): boolean {
    return this.ended;
  }

  /** False when the queue is full or finished; the item was not taken. */
  push(item: T): boolean {
    if (this.ended) return false;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w.resolve({ value: item, done: false });
      return true;
    }
    if (this.items.length >= this.capacity) return false;
    this.items.push(item);
    return true;
  }

  end(): void {
    if (this.ended) return;
    this.finishUp();
    if (this.waiter && this.items.length === 0) {
      const w = this.waiter;
      this.waiter = null;
      w.resolve({ value: undefined, done: true });
    }
  }

  fail(err: unknown): void {
    if (this.ended) return;
    this.failure = err;
    this.items.length = 0;
    this.finishUp();
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w.reject(err);
    }
  }

  /** Items still queued when the consumer stops; the owner may want to dispose of them. */
  drain(): T[] {
    return this.items.splice(0, this.items.length);
  }

  next(): Promise<IteratorResult<T>> {
    if (this.items.length > 0) return Promise.resolve({ value: this.items.shift() as T, done: false });
    if (this.failure !== null) {
      const err = this.failure;
      this.failure = null;
      return Promise.reject(err);
    }
    if (this.ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  return(): Promise<IteratorResult<T>> {
    this.end();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  private finishUp(): void {
    if (this.ended) return;
    this.ended = true;
    this.signal?.removeEventListener('abort', this.onAbort);
    this.onFinish?.();
  }
}
