import type { Endpoint } from './endpoint.js';

export interface NodeTableOptions {
  /** Most nodes kept; the least recently seen is evicted beyond it. */
  readonly maxNodes: number;
  /** An entry is forgotten this long after its last Discover or PunchRequest. */
  readonly ttlMs: number;
  /** Most node IDs that one source IP may hold at once (a NAT shares one IP between many nodes). */
  readonly maxNodesPerIp: number;
}

interface Entry {
  readonly ep: Endpoint;
  readonly seen: number;
}

export type RecordResult = 'ok' | 'ip_limit';

/**
 * node ID → last observed UDP endpoint, bounded in size and in time. The map keeps entries in
 * order of last refresh (an entry is re-inserted when touched), so the oldest is always first.
 */
export class NodeTable {
  private readonly entries = new Map<number, Entry>();
  private readonly perIp = new Map<string, number>();

  constructor(private readonly opts: NodeTableOptions) {}

  get size(): number {
    return this.entries.size;
  }

  record(nodeId: number, ep: Endpoint, now: number): RecordResult {
    const old = this.get(nodeId, now);
    if (!old || old.ip !== ep.ip) {
      if ((this.perIp.get(ep.ip) ?? 0) >= this.opts.maxNodesPerIp) return 'ip_limit';
    }
    this.remove(nodeId);
    this.sweep(now);
    while (this.entries.size >= this.opts.maxNodes) {
      const oldest = this.entries.keys().next();
      if (oldest.done) break;
      this.remove(oldest.value);
    }
    this.entries.set(nodeId, { ep, seen: now });
    this.perIp.set(ep.ip, (this.perIp.get(ep.ip) ?? 0) + 1);
    return 'ok';
  }

  get(nodeId: number, now: number): Endpoint | undefined {
    const entry = this.entries.get(nodeId);
    if (!entry) return undefined;
    if (now - entry.seen >= this.opts.ttlMs) {
      this.remove(nodeId);
      return undefined;
    }
    return entry.ep;
  }

  /** Drops every expired entry; cheap because expired entries sit at the front. */
  sweep(now: number): void {
    for (const [nodeId, entry] of this.entries) {
      if (now - entry.seen < this.opts.ttlMs) break;
      this.remove(nodeId);
    }
  }

  /** The `limit` most recently seen live node IDs. */
  recentIds(now: number, limit: number): number[] {
    this.sweep(now);
    const ids = [...this.entries.keys()];
    return ids.length > limit ? ids.slice(ids.length - limit) : ids;
  }

  private remove(nodeId: number): void {
    const entry = this.entries.get(nodeId);
    if (!entry) return;
    this.entries.delete(nodeId);
    const n = (this.perIp.get(entry.ep.ip) ?? 1) - 1;
    if (n > 0) this.perIp.set(entry.ep.ip, n);
    else this.perIp.delete(entry.ep.ip);
  }
}
