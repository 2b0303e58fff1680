/**
 * Items held per node while something is missing (a peer's key, our context), bounded per node,
 * in nodes, and in age. Adding to a full node drops its oldest item; a new node beyond the node
 * limit is refused (`add` returns 'refused').
 */
export class BoundedQueues<T> {
  readonly #queues = new Map<number, { items: T[]; since: number }>();

  constructor(
    private readonly perNode: number,
    private readonly maxNodes: number,
    private readonly maxAgeMs: number,
  ) {}

  add(nodeId: number, item: T, now: number): 'queued' | 'dropped_oldest' | 'refused' {
    let queue = this.#queues.get(nodeId);
    if (!queue) {
      if (this.#queues.size >= this.maxNodes) return 'refused';
      queue = { items: [], since: now };
      this.#queues.set(nodeId, queue);
    }
    queue.items.push(item);
    if (queue.items.length > this.perNode) {
      queue.items.shift();
      return 'dropped_oldest';
    }
    return 'queued';
  }

  has(nodeId: number): boolean {
    return this.#queues.has(nodeId);
  }

  nodes(): number[] {
    return [...this.#queues.keys()];
  }

  /** Removes and returns the node's items (oldest first). */
  take(nodeId: number): T[] {
    const queue = this.#queues.get(nodeId);
    this.#queues.delete(nodeId);
    return queue?.items ?? [];
  }

  /** Drops queues whose first item is older than the age limit; returns how many items went. */
  expire(now: number): number {
    let dropped = 0;
    for (const [nodeId, queue] of this.#queues) {
      if (now - queue.since >= this.maxAgeMs) {
        dropped += queue.items.length;
        this.#queues.delete(nodeId);
      }
    }
    return dropped;
  }

  clear(): void {
    this.#queues.clear();
  }
}
