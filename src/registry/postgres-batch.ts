/**
 * Group commit for PostgreSQL: the calls of one kind made during one event-loop turn go to the
 * database as one multi-row statement (one round trip, one commit, one WAL sync), and calls made
 * while that statement runs go together in the next. Each caller still waits for its own result,
 * so nothing is acknowledged before it is committed; many concurrent requests share the cost.
 */
interface Waiter<In, Out> {
  readonly item: In;
  readonly resolve: (out: Out) => void;
  readonly reject: (err: unknown) => void;
}

export class PgBatch<In, Out> {
  #pending: Waiter<In, Out>[] = [];
  #running = false;
  #scheduled = false;

  /**
   * `run` gets the items of one batch and returns their results in the same order.
   * Items with the same `key` may not share a statement (e.g. both upsert the same row): the
   * later one waits for the next batch, so their order is kept.
   */
  constructor(
    private readonly run: (items: In[]) => Promise<Out[]>,
    private readonly key?: (item: In) => string,
  ) {}

  add(item: In): Promise<Out> {
    return new Promise((resolve, reject) => {
      this.#pending.push({ item, resolve, reject });
      this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#running || this.#scheduled) return;
    this.#scheduled = true;
    // After the turn's I/O callbacks, so that their calls join this batch.
    setImmediate(() => {
      this.#scheduled = false;
      void this.#flush();
    });
  }

  async #flush(): Promise<void> {
    if (this.#running || this.#pending.length === 0) return;
    const batch = this.#take();
    this.#running = true;
    try {
      const results = await this.run(batch.map((p) => p.item));
      for (const [i, p] of batch.entries()) p.resolve(results[i] as Out);
    } catch (err) {
      for (const p of batch) p.reject(err);
    } finally {
      this.#running = false;
      if (this.#pending.length > 0) this.#schedule();
    }
  }

  #take(): Waiter<In, Out>[] {
    const key = this.key;
    if (key === undefined) {
      const all = this.#pending;
      this.#pending = [];
      return all;
    }
    const batch: Waiter<In, Out>[] = [];
    const later: Waiter<In, Out>[] = [];
    const taken = new Set<string>();
    for (const p of this.#pending) {
      const k = key(p.item);
      if (taken.has(k)) later.push(p);
      else {
        taken.add(k);
        batch.push(p);
      }
    }
    this.#pending = later;
    return batch;
  }
}
