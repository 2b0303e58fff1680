import { PilotError } from '../errors.js';
import { formatAddr, type Addr } from '../protocol/address.js';
import type { DaemonInfo } from '../protocol/ipc-info.js';
import type { Datagram } from '../pilot-net.js';
import type { DatagramOptions, Health } from '../pilot-node.js';
import { AsyncQueue } from './async-queue.js';

/** Datagrams an iterator may hold unread; beyond it the oldest give way (see AsyncQueue). */
export const DATAGRAM_QUEUE_SIZE = 256;

/**
 * The `datagrams()` iterators of one node handle (Driver or EmbeddedNode): each gets every datagram
 * received from its creation on, or those to one port, until it is ended or the handle closes.
 */
export class DatagramInbox {
  private readonly queues = new Map<AsyncQueue<Datagram>, number | undefined>();
  private ended = false;

  open(options: DatagramOptions = {}): AsyncIterable<Datagram> {
    const queue: AsyncQueue<Datagram> = new AsyncQueue<Datagram>(DATAGRAM_QUEUE_SIZE, options.signal, () =>
      this.queues.delete(queue),
    );
    if (this.ended) queue.end();
    else if (!queue.finished) this.queues.set(queue, options.port);
    return queue;
  }

  deliver(datagram: Datagram): void {
    for (const [queue, port] of this.queues) {
      if (port === undefined || port === datagram.dstPort) queue.push(datagram);
    }
  }

  /** The handle closed: iterators end, or fail with `err`. */
  close(err: PilotError | null): void {
    this.ended = true;
    for (const queue of [...this.queues.keys()]) {
      if (err) queue.fail(err);
      else queue.end();
    }
    this.queues.clear();
  }
}

/** `health()` of a node handle: its info when it answers; a handle not running is an error. */
export async function healthOf(info: () => Promise<DaemonInfo>, localAddr: Addr): Promise<Health> {
  try {
    const i = await info();
    return { ok: true, uptimeSecs: i.uptime_secs, nodeId: i.node_id, address: i.address };
  } catch (err) {
    if (err instanceof PilotError && err.code === 'not_running') throw err;
    return { ok: false, uptimeSecs: 0, nodeId: localAddr.node, address: formatAddr(localAddr) };
  }
}
