import type { SimTunnelNode, Arrival } from './tunnel-node.js';
import type { SimWorld } from './tunnel-world.js';

/** Both nodes send each other a test packet every `everyMs` (a node only once its tunnel knows the other). */
export function steadyTraffic(
  world: SimWorld,
  a: SimTunnelNode,
  b: SimTunnelNode,
  everyMs: number,
  until: number,
): void {
  const tick = (): void => {
    a.sendTo(b.nodeId);
    if (b.core.hasPeer(a.nodeId)) b.sendTo(a.nodeId);
    if (world.now + everyMs <= until) world.at(world.now + everyMs, tick);
  };
  world.at(world.now, tick);
}

/** Time from `since` until the first packet sent at or after `since` arrived (Infinity: none did). */
export function recoveryAfter(arrivals: readonly Arrival[] | undefined, since: number): number {
  const first = (arrivals ?? []).find((a) => a.sentAt > since);
  return first ? first.at - since : Number.POSITIVE_INFINITY;
}

/** The share of packets sent in [from, to) that arrived, given that one went every `everyMs`. */
export function deliveredShare(
  arrivals: readonly Arrival[] | undefined,
  from: number,
  to: number,
  everyMs: number,
): number {
  const got = new Set((arrivals ?? []).filter((a) => a.sentAt >= from && a.sentAt < to).map((a) => a.seq)).size;
  return got / Math.max(1, Math.floor((to - from) / everyMs));
}

/** A line to print when a case fails, so that it can be replayed. */
export function describeRun(name: string, seed: number, world: SimWorld, nodes: readonly SimTunnelNode[]): string {
  const lines = [`${name}: seed ${seed}, t=${world.now}, world ${JSON.stringify(world.stats)}`];
  for (const n of nodes) {
    const drops = JSON.stringify(n.core.stats.dropped);
    const notable = n.events
      .filter((e) => e.event.type !== 'dropped')
      .map(
        (e) =>
          `${e.at - 1_000_000}:${e.event.type}${e.event.type === 'established' ? (e.event.args[0].rekeyed ? '(rekeyed)' : '') : ''}`,
      )
      .join(' ');
    lines.push(`  ${n.name}: peers ${JSON.stringify(n.core.peers())} drops ${drops}`);
    lines.push(`    events ${notable}`);
  }
  return lines.join('\n');
}
