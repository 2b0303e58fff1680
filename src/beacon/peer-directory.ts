import { endpointKey, type Endpoint } from './endpoint.js';

interface PeerState {
  readonly ep: Endpoint;
  nodes: ReadonlySet<number>;
  syncedAt: number;
}

/**
 * The configured peer beacons and which node IDs each one last said it holds (Sync, 0x07).
 * Only configured peers are tracked, so its size is bounded by the peer count × 65535.
 */
export class PeerDirectory {
  private readonly peers = new Map<string, PeerState>();

  /** @param staleMs a peer's list is ignored when its last Sync is older than this */
  constructor(private readonly staleMs: number) {}

  /** Sets the resolved peer endpoints, keeping the node lists of peers that stay. */
  setPeers(eps: readonly Endpoint[]): void {
    const keep = new Set(eps.map(endpointKey));
    for (const key of this.peers.keys()) if (!keep.has(key)) this.peers.delete(key);
    for (const ep of eps) {
      const key = endpointKey(ep);
      if (!this.peers.has(key)) this.peers.set(key, { ep, nodes: new Set(), syncedAt: -Infinity });
    }
  }

  endpoints(): Endpoint[] {
    return [...this.peers.values()].map((p) => p.ep);
  }

  isPeer(ep: Endpoint): boolean {
    return this.peers.has(endpointKey(ep));
  }

  /** Replaces everything previously learnt from this peer. False when `from` is not a peer. */
  applySync(from: Endpoint, nodeIds: readonly number[], now: number): boolean {
    const peer = this.peers.get(endpointKey(from));
    if (!peer) return false;
    peer.nodes = new Set(nodeIds);
    peer.syncedAt = now;
    return true;
  }

  /** The peer beacon that most recently claimed `nodeId`, if its claim is still fresh. */
  owner(nodeId: number, now: number): Endpoint | undefined {
    let best: PeerState | undefined;
    for (const peer of this.peers.values()) {
      if (now - peer.syncedAt >= this.staleMs || !peer.nodes.has(nodeId)) continue;
      if (!best || peer.syncedAt > best.syncedAt) best = peer;
    }
    return best?.ep;
  }
}
