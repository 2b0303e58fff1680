import { PilotError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Packet } from '../protocol/packet.js';

/** The part of the tunnel the router drives. */
export interface PeerLinks {
  hasPeer(node: number): boolean;
  addPeer(node: number, endpoint: string): void;
  send(node: number, packet: Packet): boolean;
  requestPunch(node: number): void;
}

export interface PeerRouterOptions {
  links: PeerLinks;
  /** Registry `resolve`: the UDP endpoint of a node, or a PilotError saying why not. */
  resolve: (node: number) => Promise<string>;
  /** Called when a node cannot be reached, so waiting dials fail at once with the reason. */
  onUnreachable: (node: number, err: PilotError) => void;
  log: Logger;
}

const QUEUE_PER_NODE = 64;
const MAX_RESOLVING = 256;
/** A refused resolve is not retried for this long (SYN retransmissions would hammer the registry). */
const NEGATIVE_TTL_MS = 1_000;

/**
 * Sends packets to other nodes: straight into the tunnel when the node has an endpoint, otherwise
 * after resolving it through the registry (packets wait in a small queue meanwhile).
 */
export class PeerRouter {
  private readonly waiting = new Map<number, Packet[]>();
  /** Bumped by retry(): a resolve that started before it may have been refused for a stale reason. */
  private readonly generation = new Map<number, number>();
  private readonly refused = new Map<number, { until: number; err: PilotError }>();

  constructor(private readonly o: PeerRouterOptions) {}

  /** Forgets a cached refusal (the node just became reachable, e.g. trust was established). */
  retry(node: number): void {
    this.refused.delete(node);
    this.generation.set(node, (this.generation.get(node) ?? 0) + 1);
    if (this.generation.size > 4096) this.generation.clear();
  }

  send(packet: Packet): void {
    const node = packet.dst.node;
    if (this.o.links.hasPeer(node)) {
      this.o.links.send(node, packet);
      return;
    }
    const queue = this.waiting.get(node);
    if (queue) {
      if (queue.length >= QUEUE_PER_NODE) queue.shift();
      queue.push(packet);
      return;
    }
    const refused = this.refused.get(node);
    if (refused && refused.until > Date.now()) {
      // Not from inside the send: the dial that produced this packet is not registered yet.
      setImmediate(() => this.o.onUnreachable(node, refused.err));
      return;
    }
    if (this.waiting.size >= MAX_RESOLVING) return;
    this.waiting.set(node, [packet]);
    void this.resolve(node);
  }

  private async resolve(node: number): Promise<void> {
    const gen = this.generation.get(node) ?? 0;
    try {
      const endpoint = await this.o.resolve(node);
      this.refused.delete(node);
      this.o.links.addPeer(node, endpoint);
      this.o.links.requestPunch(node);
      const queue = this.waiting.get(node) ?? [];
      this.waiting.delete(node);
      for (const p of queue) this.o.links.send(node, p);
    } catch (err) {
      if ((this.generation.get(node) ?? 0) !== gen) {
        // Trust changed while the registry answered: the refusal may be outdated, so ask again.
        void this.resolve(node);
        return;
      }
      this.waiting.delete(node);
      const e =
        err instanceof PilotError
          ? err
          : new PilotError('connection_failed', `cannot reach node ${node}: ${String(err)}`);
      if (this.refused.size >= 4096) this.refused.clear();
      this.refused.set(node, { until: Date.now() + NEGATIVE_TTL_MS, err: e });
      this.o.log.debug({ node, err: e.message }, 'resolve failed');
      this.o.onUnreachable(node, e);
    }
  }
}
