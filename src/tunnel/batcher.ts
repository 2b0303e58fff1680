import { batchedSize, isBatchable } from '../protocol/packet-batch.js';
import type { Packet } from '../protocol/packet.js';

/**
 * Collects the packets sent to batching peers during one synchronous run (one flush of the
 * transport engine) and hands them over per node when the run ends (by default in a microtask;
 * `schedule` lets the owner decide when: the tunnel waits for the end of the event-loop turn), so
 * they can be sealed together. A flush runs outside its caller, so it never throws: what fails
 * for one node goes to `onError` (its packets are lost like any datagram).
 */
export class SendBatcher {
  #queues = new Map<number, Packet[]>();
  #scheduled = false;

  constructor(
    private readonly flushNode: (node: number, packets: Packet[]) => void,
    private readonly onError: (node: number, packets: number, err: unknown) => void = () => undefined,
    /** Arranges for `run` (the flush) to be called once the current run ends. */
    private readonly schedule: (run: () => void) => void = queueMicrotask,
  ) {}

  add(node: number, packet: Packet): void {
    const queue = this.#queues.get(node);
    if (queue) queue.push(packet);
    else this.#queues.set(node, [packet]);
    if (this.#scheduled) return;
    this.#scheduled = true;
    this.schedule(() => this.flush());
  }

  flush(): void {
    this.#scheduled = false;
    const queues = this.#queues;
    this.#queues = new Map();
    for (const [node, packets] of queues) {
      try {
        this.flushNode(node, packets);
      } catch (err) {
        this.onError(node, packets.length, err);
      }
    }
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
 * not fit with others forms a group of one; so does a packet too large for any batch
 * (see isBatchable), which the caller must send alone in a PILS frame.
 */
export function groupForBatches(packets: readonly Packet[], limit: number): Packet[][] {
  const groups: Packet[][] = [];
  let current: Packet[] = [];
  let size = 0;
  for (const p of packets) {
    const n = batchedSize(p);
    if (current.length > 0 && (size + n > limit || !isBatchable(p))) {
      groups.push(current);
      current = [];
      size = 0;
    }
    current.push(p);
    size += n;
    if (!isBatchable(p)) {
      groups.push(current);
      current = [];
      size = 0;
    }
  }
  if (current.length > 0) groups.push(current);
  return groups;
}
