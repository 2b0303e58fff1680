import type { Logger } from '../log.js';
import type { PilsFrame } from '../protocol/tunnel.js';
import { encodePils } from '../protocol/tunnel.js';
import { ContextPrep } from './context-prep.js';
import { endpointEquals, formatEndpoint, type UdpEndpoint } from './endpoint.js';
import type { LocalKeys } from './local-keys.js';
import type { Outbox } from './outbox.js';
import type { PeerCrypto } from './peer-crypto.js';
import { PeerTable, type PeerState } from './peer-table.js';
import * as policy from './policy.js';
import type { Origin } from './policy.js';
import { BoundedQueues } from './queues.js';
import type { SentKind } from './stats.js';

/** A sealed frame that arrived before the key it needs (kept briefly, opened once the key is there). */
export interface EarlyFrame {
  readonly frame: PilsFrame;
  readonly origin: Origin;
  readonly batch: boolean;
}

/**
 * The state every part of the tunnel core shares: who we are, the peers with their paths and
 * what waits for them, and the way out. Peer bookkeeping (adding, path changes and their events)
 * lives here so that each change is made, and announced, in one place.
 */
export class PeerBook {
  nodeId = 0;
  readonly peers = new PeerTable(policy.MAX_PEERS);
  /** Packets waiting for a peer's key. */
  readonly pending = new BoundedQueues<Uint8Array>(policy.QUEUE_PER_PEER, policy.QUEUE_PEERS, policy.QUEUE_MAX_AGE_MS);
  readonly early = new BoundedQueues<EarlyFrame>(policy.EARLY_PER_PEER, policy.EARLY_PEERS, policy.EARLY_MAX_AGE_MS);
  /** Peers whose next AES-GCM contexts are to be made ahead. */
  readonly prep = new ContextPrep(policy.CONTEXT_PREP_DELAY_MS);
  /** Peers currently relayed: their direct path is probed in the background. */
  readonly relayed = new Set<number>();
  /** Crypto contexts of removed peers (oldest first), resumed if the peer is added again. */
  readonly #dormant = new Map<number, { readonly crypto: PeerCrypto; readonly at: number }>();

  constructor(
    readonly out: Outbox,
    readonly keys: LocalKeys,
    readonly encrypt: boolean,
    readonly log: Logger,
  ) {}

  get beacon(): UdpEndpoint | undefined {
    return this.out.beacon;
  }

  ensure(nodeId: number, now: number): { peer: PeerState; created: boolean } {
    const { peer, created, evicted } = this.peers.ensure(nodeId, now);
    if (evicted !== undefined) {
      this.pending.take(evicted);
      this.early.take(evicted);
      this.relayed.delete(evicted);
    }
    return { peer, created };
  }

  /** The peer entry for a node that proved itself (or any sender, with encryption off). */
  adopt(nodeId: number, origin: Origin, now: number): PeerState {
    const { peer, created } = this.ensure(nodeId, now);
    if (!peer.endpoint) peer.endpoint = origin.relayFrom === undefined ? origin.endpoint : this.beacon;
    if (created && peer.endpoint)
      this.out.emit({ type: 'peer-added', args: [{ peerNodeId: nodeId, endpoint: formatEndpoint(peer.endpoint) }] });
    return peer;
  }

  /**
   * Forgets a peer (its trust was revoked). Its crypto context is set aside: a peer removed and
   * added again within minutes keeps sealing under the same key, and a PILA repeating a key in use
   * draws no answer (it cannot be told from an answer to ours), so without the context we could
   * not open its frames until a recovery exchange a second later. Nothing is opened with a
   * dormant context until the peer is added again.
   */
  remove(nodeId: number, now: number): void {
    const crypto = this.peers.get(nodeId)?.crypto;
    this.#dormant.delete(nodeId);
    if (crypto) {
      if (this.#dormant.size >= policy.DORMANT_PEERS) this.#dormant.delete(this.#dormant.keys().next().value as number);
      this.#dormant.set(nodeId, { crypto, at: now });
    }
    this.peers.delete(nodeId);
    this.relayed.delete(nodeId);
    this.pending.take(nodeId);
    this.early.take(nodeId);
  }

  /** The context a removed peer had, if it was removed lately (taken: at most once). */
  takeDormant(nodeId: number, now: number): PeerCrypto | undefined {
    const dormant = this.#dormant.get(nodeId);
    this.#dormant.delete(nodeId);
    return dormant !== undefined && now - dormant.at <= policy.DORMANT_MS ? dormant.crypto : undefined;
  }

  clear(): void {
    this.#dormant.clear();
    this.peers.clear();
    this.relayed.clear();
    this.pending.clear();
    this.early.clear();
    this.prep.clear();
  }

  updateEndpoint(peer: PeerState, endpoint: UdpEndpoint): void {
    if (endpointEquals(peer.endpoint, endpoint)) return;
    peer.endpoint = endpoint;
    this.out.emit({
      type: 'endpoint-changed',
      args: [{ peerNodeId: peer.nodeId, endpoint: formatEndpoint(endpoint) }],
    });
  }

  markRelay(peer: PeerState, now: number): void {
    if (!peer.relay) {
      peer.relay = true;
      peer.exchangeSince = 0;
      peer.probeIntervalMs = policy.PROBE_FIRST_MS;
      peer.probeAt = now + policy.PROBE_FIRST_MS;
      this.relayed.add(peer.nodeId);
    }
    if (peer.relayAnnounced) return;
    peer.relayAnnounced = true;
    this.out.emit({ type: 'relay-activated', args: [{ peerNodeId: peer.nodeId }] });
  }

  /** Back to the direct path (the relay is never sticky). */
  leaveRelay(peer: PeerState): void {
    if (!peer.relay) return;
    peer.relay = false;
    peer.relayAnnounced = false;
    this.relayed.delete(peer.nodeId);
    if (peer.endpoint)
      this.out.emit({
        type: 'direct-upgraded',
        args: [{ peerNodeId: peer.nodeId, endpoint: formatEndpoint(peer.endpoint) }],
      });
  }

  /** Sends a frame to a peer by its current path (straight, or wrapped for the beacon relay). */
  transmit(peer: PeerState, frame: Uint8Array | readonly Uint8Array[], kind: SentKind, now: number): void {
    peer.lastSentAt = now;
    if (peer.relay)
      this.out.relay(this.nodeId, peer.nodeId, frame instanceof Uint8Array ? frame : Buffer.concat(frame), kind);
    else if (peer.endpoint) this.out.deliver(frame, peer.endpoint, kind);
  }

  /** Seals encoded packet bytes (or a one-byte probe) as one PILS frame. */
  sealPils(crypto: PeerCrypto, plaintext: Uint8Array): Uint8Array {
    const sealed = crypto.send.seal(plaintext);
    return encodePils({ senderNode: this.nodeId, nonce: sealed.nonce, sealed: sealed.sealed });
  }
}
