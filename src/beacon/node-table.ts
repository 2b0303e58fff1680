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
  /** The node proved its id here with its key: only another proof may move it. */
  readonly proven: boolean;
}

export interface NodeEntry {
  readonly ep: Endpoint;
  readonly proven: boolean;
}

export type RecordResult = 'ok' | 'ip_limit' | 'id_claimed';

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

  /**
   * Records where a node is. An unproven claim cannot move a proven entry: from the proven
   * endpoint it refreshes it (the node's own plain Discover), from anywhere else it is refused.
   */
  record(nodeId: number, ep: Endpoint, now: number, proven = false): RecordResult {
    const old = this.entry(nodeId, now);
    const same = old !== undefined && old.ep.ip === ep.ip && old.ep.port === ep.port;
    if (old?.proven === true && !proven && !same) return 'id_claimed';
    if (!old || old.ep.ip !== ep.ip) {
      if ((this.perIp.get(ep.ip) ?? 0) >= this.opts.maxNodesPerIp) return 'ip_limit';
    }
    const keepsProof = proven || (same && old.proven);
    this.remove(nodeId);
    this.sweep(now);
    while (this.entries.size >= this.opts.maxNodes) {
      const oldest = this.entries.keys().next();
      if (oldest.done) break;
      this.remove(oldest.value);
    }
    this.entries.set(nodeId, { ep, seen: now, proven: keepsProof });
    this.perIp.set(ep.ip, (this.perIp.get(ep.ip) ?? 0) + 1);
    return 'ok';
  }

  get(nodeId: number, now: number): Endpoint | undefined {
    return this.entry(nodeId, now)?.ep;
  }

  entry(nodeId: number, now: number): NodeEntry | undefined {
    const entry = this.entries.get(nodeId);
    if (!entry) return undefined;
    if (now - entry.seen >= this.opts.ttlMs) {
      this.remove(nodeId);
      return undefined;
    }
    return entry;
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
