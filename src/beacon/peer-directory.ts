import { endpointKey, type Endpoint } from './endpoint.js';

interface PeerState {
  readonly ep: Endpoint;
  /** Named by the operator (`-peers`) rather than learnt from the registry. */
  configured: boolean;
  nodes: ReadonlySet<number>;
  syncedAt: number;
}

/** `resumed`: the first Sync from this peer, or the first since its list went stale. */
export type SyncOutcome = 'not_peer' | 'refreshed' | 'resumed';

/**
 * The peer beacons (configured, plus those discovered through the registry) and which node IDs
 * each one last said it holds (Sync, 0x07). Only peers are tracked, so its size is bounded by
 * the peer count × 65535.
 */
export class PeerDirectory {
  private readonly peers = new Map<string, PeerState>();

  /** @param staleMs a peer's list is ignored when its last Sync is older than this */
  constructor(private readonly staleMs: number) {}

  /**
   * Sets the peer endpoints, keeping the node lists of peers that stay. An endpoint in both lists
   * counts as configured. Returns the endpoints that were not peers before.
   */
  setPeers(configured: readonly Endpoint[], discovered: readonly Endpoint[] = []): Endpoint[] {
    const wanted = new Map<string, { ep: Endpoint; configured: boolean }>();
    for (const ep of configured) wanted.set(endpointKey(ep), { ep, configured: true });
    for (const ep of discovered)
      if (!wanted.has(endpointKey(ep))) wanted.set(endpointKey(ep), { ep, configured: false });
    for (const key of this.peers.keys()) if (!wanted.has(key)) this.peers.delete(key);
    const added: Endpoint[] = [];
    for (const [key, want] of wanted) {
      const existing = this.peers.get(key);
      if (existing) {
        existing.configured = want.configured;
        continue;
      }
      this.peers.set(key, { ep: want.ep, configured: want.configured, nodes: new Set(), syncedAt: -Infinity });
      added.push(want.ep);
    }
    return added;
  }

  endpoints(): Endpoint[] {
    return [...this.peers.values()].map((p) => p.ep);
  }

  isPeer(ep: Endpoint): boolean {
    return this.peers.has(endpointKey(ep));
  }

  /**
   * Whether this beacon's node list may go to `ep`: always to a configured peer, to a discovered
   * one only while it is gossiping back. Anyone may register any address as a beacon, so an
   * address that never answers with a Sync gets only empty ones, never a list or a large datagram.
   */
  sharesWith(ep: Endpoint, now: number): boolean {
    const peer = this.peers.get(endpointKey(ep));
    return peer !== undefined && (peer.configured || this.fresh(peer, now));
  }

  /** Replaces everything previously learnt from this peer. */
  applySync(from: Endpoint, nodeIds: readonly number[], now: number): SyncOutcome {
    const peer = this.peers.get(endpointKey(from));
    if (!peer) return 'not_peer';
    const wasFresh = this.fresh(peer, now);
    peer.nodes = new Set(nodeIds);
    peer.syncedAt = now;
    return wasFresh ? 'refreshed' : 'resumed';
  }

  /** The peer beacon that most recently claimed `nodeId`, if its claim is still fresh. */
  owner(nodeId: number, now: number): Endpoint | undefined {
    let best: PeerState | undefined;
    for (const peer of this.peers.values()) {
      if (!this.fresh(peer, now) || !peer.nodes.has(nodeId)) continue;
      if (!best || peer.syncedAt > best.syncedAt) best = peer;
    }
    return best?.ep;
  }

  private fresh(peer: PeerState, now: number): boolean {
    return now - peer.syncedAt < this.staleMs;
  }
}
