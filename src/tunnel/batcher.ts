import { batchedSize } from '../protocol/packet-batch.js';
import type { Packet } from '../protocol/packet.js';

/**
 * Collects the packets sent to batching peers during one synchronous run (one flush of the
 * transport engine) and hands them over per node in a microtask, so they can be sealed together.
 * Nothing waits longer than the code that produced it.
 */
export class SendBatcher {
  #queues = new Map<number, Packet[]>();
  #scheduled = false;

  constructor(private readonly flushNode: (node: number, packets: Packet[]) => void) {}

  add(node: number, packet: Packet): void {
    const queue = this.#queues.get(node);
    if (queue) queue.push(packet);
    else this.#queues.set(node, [packet]);
    if (this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(() => this.flush());
  }

  flush(): void {
    this.#scheduled = false;
    const queues = this.#queues;
    this.#queues = new Map();
    for (const [node, packets] of queues) this.flushNode(node, packets);
  }

  forget(node: number): void {
    this.#queues.delete(node);
  }

  clear(): void {
    this.#queues.clear();
  }
}

/**
 * Splits packets, in order, into groups whose batch bodies fit `limit` bytes. A packet that does
 * not fit with others forms a group of one.
 */
export function groupForBatches(packets: readonly Packet[], limit: number): Packet[][] {
  const groups: Packet[][] = [];
  let current: Packet[] = [];
  let size = 0;
  for (const p of packets) {
    const n = batchedSize(p);
    if (current.length > 0 && size + n > limit) {
      groups.push(current);
      current = [];
      size = 0;
    }
    current.push(p);
    size += n;
  }
  if (current.length > 0) groups.push(current);
  return groups;
}
