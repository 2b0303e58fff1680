import { bytesEqual } from '../crypto/bytes.js';
import type { UdpEndpoint } from './endpoint.js';
import type { PeerCrypto } from './peer-crypto.js';

/** X25519 keys a peer used before its last rekey; a PILA carrying one is a replay. */
const MAX_RETIRED_KEYS = 8;

export interface PeerState {
  readonly nodeId: number;
  endpoint: UdpEndpoint | undefined;
  relay: boolean;
  /** 'relay-activated' already emitted. */
  relayAnnounced: boolean;
  crypto: PeerCrypto | undefined;
  authenticated: boolean;
  /** The peer reads PILM frames (several packets per datagram). */
  batching: boolean;
  lastActive: number;
  /** When a fresh authenticated frame last arrived straight from the peer (0: never). */
  lastDirectAt: number;
  /** While relayed: when to probe the direct path next, and the current back-off. */
  probeAt: number;
  probeIntervalMs: number;
  /** When our key exchange towards the peer's direct endpoint began (0: not waiting for one). */
  exchangeSince: number;
  /** When a packet (not a probe or keep-alive) last went to or came from the peer. */
  lastPacketAt: number;
  /** When anything was last sent to the peer. */
  lastSentAt: number;
  /** Since when packets went to the peer with nothing authenticated coming back (0: answered). */
  unansweredSince: number;
  /** When checks of a silent direct path began (0: none running), and when the next one is due. */
  checkSince: number;
  checkAt: number;
  /** The peer sent us a path probe or answered one (a pilot-ts node: a silent path is a broken one). */
  probes: boolean;
  readonly retiredKeys: Uint8Array[];
}

export class PeerTable {
  readonly #peers = new Map<number, PeerState>();

  constructor(private readonly maxPeers: number) {}

  get size(): number {
    return this.#peers.size;
  }

  get(nodeId: number): PeerState | undefined {
    return this.#peers.get(nodeId);
  }

  delete(nodeId: number): boolean {
    return this.#peers.delete(nodeId);
  }

  values(): IterableIterator<PeerState> {
    return this.#peers.values();
  }

  /** Returns the peer, creating it (evicting the least recently active one when full). */
  ensure(nodeId: number, now: number): { peer: PeerState; created: boolean; evicted?: number } {
    const existing = this.#peers.get(nodeId);
    if (existing) return { peer: existing, created: false };
    let evicted: number | undefined;
    if (this.#peers.size >= this.maxPeers) {
      let victim: PeerState | undefined;
      for (const p of this.#peers.values()) if (!victim || p.lastActive < victim.lastActive) victim = p;
      if (victim) {
        this.#peers.delete(victim.nodeId);
        evicted = victim.nodeId;
      }
    }
    const peer: PeerState = {
      nodeId,
      endpoint: undefined,
      relay: false,
      relayAnnounced: false,
      crypto: undefined,
      authenticated: false,
      batching: false,
      lastActive: now,
      lastDirectAt: 0,
      probeAt: 0,
      probeIntervalMs: 0,
      exchangeSince: 0,
      lastPacketAt: 0,
      lastSentAt: 0,
      unansweredSince: 0,
      checkSince: 0,
      checkAt: 0,
      probes: false,
      retiredKeys: [],
    };
    this.#peers.set(nodeId, peer);
    return evicted === undefined ? { peer, created: true } : { peer, created: true, evicted };
  }

  clear(): void {
    this.#peers.clear();
  }
}

export function isRetiredKey(peer: PeerState, x25519: Uint8Array): boolean {
  return peer.retiredKeys.some((k) => bytesEqual(k, x25519));
}

export function retireKey(peer: PeerState, x25519: Uint8Array): void {
  peer.retiredKeys.push(x25519);
  if (peer.retiredKeys.length > MAX_RETIRED_KEYS) peer.retiredKeys.shift();
}
