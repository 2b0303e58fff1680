import { decodePila, decodePilk } from '../protocol/tunnel.js';
import { TokenBucket } from '../rate-limit.js';
import type { PilaVerdict } from './authenticator.js';
import type { UdpEndpoint } from './endpoint.js';
import { IntervalLimiter } from './limits.js';
import type { EarlyFrame, PeerBook } from './peer-book.js';
import { PeerCrypto } from './peer-crypto.js';
import { isRetiredKey, retireKey, type PeerState } from './peer-table.js';
import * as policy from './policy.js';
import type { Origin } from './policy.js';

/** Key exchanges waiting for the driver's verdict at once; beyond it a PILA is refused as `lookup_busy`. */
const MAX_VERIFYING = 1024;

interface Verifying {
  readonly node: number;
  readonly x25519: Uint8Array;
  readonly key: Uint8Array;
  readonly origin: Origin;
}

/**
 * The authenticated key exchange (PILA, §3.6): our frames (on demand, repeated while packets wait,
 * in answer to a peer that cannot talk to us), a peer's frames checked and turned into its crypto
 * context. The check against the registry key is the driver's: a frame waits for its verdict
 * under an id (`verified`), and the core never waits.
 */
export class Handshake {
  readonly #pilaLimit = new IntervalLimiter<number>(policy.PILA_MIN_INTERVAL_MS, policy.MAX_PEERS);
  readonly #recoveryLimit = new IntervalLimiter<number>(policy.RECOVERY_INTERVAL_MS, policy.MAX_PEERS);
  readonly #recoveryBudget = new TokenBucket(20, 40);
  readonly #verifying = new Map<number, Verifying>();
  #nextId = 1;

  constructor(
    private readonly book: PeerBook,
    /** Opens a sealed frame that arrived before the key (called once the key is there). */
    private readonly openEarly: (frame: EarlyFrame, now: number) => void,
    /** Called when a peer's new key is in use (its first, or one it took after a restart). */
    private readonly onNewKey: (peer: PeerState, now: number) => void,
  ) {}

  onPila(data: Uint8Array, origin: Origin): void {
    const decoded = decodePila(data);
    if (!decoded.ok) return this.book.out.drop('malformed', origin.endpoint);
    const frame = decoded.value;
    const node = frame.senderNode;
    if (!this.book.encrypt) return this.book.out.drop('encryption_off', origin.endpoint, node);
    if (origin.relayFrom !== undefined && origin.relayFrom !== node)
      return this.book.out.drop('relay_sender_mismatch', origin.endpoint, node);
    if (node === this.book.nodeId) return this.book.out.drop('own_node_id', origin.endpoint, node);
    const known = this.book.peers.get(node);
    if (known && isRetiredKey(known, frame.x25519Public))
      return this.book.out.drop('stale_key_exchange', origin.endpoint, node);
    const key = this.book.keys.deriveKey(frame.x25519Public);
    if (!key) return this.book.out.drop('bad_key', origin.endpoint, node);
    if (this.#verifying.size >= MAX_VERIFYING) return this.book.out.drop('lookup_busy', origin.endpoint, node);
    const id = this.#nextId++;
    this.#verifying.set(id, { node, x25519: frame.x25519Public, key, origin });
    this.book.out.request({ id, frame });
  }

  /** The driver's verdict on the key exchange it was asked to check as `id`. */
  verified(id: number, verdict: PilaVerdict, now: number): void {
    const v = this.#verifying.get(id);
    if (!v) return;
    this.#verifying.delete(id);
    if (verdict !== 'ok') return this.book.out.drop(verdict, v.origin.endpoint, v.node);
    this.#accept(v, now);
  }

  /** Anonymous exchange refused: we require an identity; show ours so the peer can use PILA. */
  onPilk(data: Uint8Array, origin: Origin, now: number): void {
    const frame = decodePilk(data);
    if (!frame.ok) return this.book.out.drop('malformed', origin.endpoint);
    if (!this.book.encrypt) return this.book.out.drop('encryption_off', origin.endpoint, frame.value.senderNode);
    this.book.out.drop('anonymous_key_exchange', origin.endpoint, frame.value.senderNode);
    this.sendRecoveryPila(frame.value.senderNode, origin, now);
  }

  #accept(v: Verifying, now: number): void {
    const { node, x25519, key, origin } = v;
    const book = this.book;
    const existing = book.peers.get(node);
    if (existing && isRetiredKey(existing, x25519)) return book.out.drop('stale_key_exchange', origin.endpoint, node);
    const peer = book.adopt(node, origin, now);
    const previous = peer.crypto;
    const rekeyed = previous !== undefined && !previous.isKeyFrom(x25519);
    // Same X25519 key means same AES key: our send counter and the receive windows carry on,
    // so a repeated or replayed PILA can neither cause nonce reuse nor re-admit old frames.
    let crypto = previous;
    if (!crypto || rekeyed) {
      if (previous) retireKey(peer, previous.peerX25519);
      crypto = new PeerCrypto(key, x25519);
      peer.crypto = crypto;
      if (origin.relayFrom === undefined) book.updateEndpoint(peer, origin.endpoint);
    }
    this.#authenticate(peer, now);
    // Only a new key arriving through the relay moves the path there: a PILA repeating the key in
    // use may be a replay (anyone can capture one), and the path stays as it is.
    if (origin.relayFrom !== undefined && (!previous || rekeyed)) book.markRelay(peer, now);
    book.out.emit({
      type: 'established',
      args: [{ peerNodeId: node, authenticated: true, rekeyed, relay: peer.relay }],
    });
    if (!previous || rekeyed) {
      this.sendPila(peer, now, true);
      this.onNewKey(peer, now);
    } else if (this.#pilaLimit.since(node, now) >= policy.PILA_REPLY_QUIET_MS) this.sendPila(peer, now);
    this.#release(peer, crypto, now);
  }

  /**
   * A peer added again takes up the crypto context it had when it was removed (PeerBook.remove):
   * its frames under that key open at once. Our PILA still goes out, in case it lost ours.
   */
  resume(peer: PeerState, crypto: PeerCrypto, now: number): void {
    peer.crypto = crypto;
    this.#authenticate(peer, now);
    this.book.out.emit({
      type: 'established',
      args: [{ peerNodeId: peer.nodeId, authenticated: true, rekeyed: false, relay: peer.relay }],
    });
    this.sendPila(peer, now);
    this.#release(peer, crypto, now);
  }

  #authenticate(peer: PeerState, now: number): void {
    peer.authenticated = true;
    peer.lastActive = now;
    peer.exchangeSince = 0;
  }

  /** The peer's key is in use: what waited for it goes out, and its early frames are opened. */
  #release(peer: PeerState, crypto: PeerCrypto, now: number): void {
    const book = this.book;
    for (const bytes of book.pending.take(peer.nodeId)) book.transmit(peer, book.sealPils(crypto, bytes), 'PILS', now);
    for (const early of book.early.take(peer.nodeId)) this.openEarly(early, now);
  }

  sendPila(peer: PeerState, now: number, force = false): void {
    if (!this.#pilaLimit.allow(peer.nodeId, now) && !force) return;
    this.book.transmit(peer, this.book.keys.pila(this.book.nodeId), 'PILA', now);
  }

  /** Our PILA straight to `to`, in answer to a punch from a node we are trying to reach. */
  answerPunch(node: number, to: UdpEndpoint, now: number): void {
    this.#pilaLimit.allow(node, now);
    this.book.out.deliver(this.book.keys.pila(this.book.nodeId), to, 'PILA');
  }

  /** PILA to a sender that cannot talk to us yet; limited per node and in total (it is larger than what triggers it). */
  sendRecoveryPila(node: number, origin: Origin, now: number): void {
    if (!this.#recoveryLimit.allow(node, now) || !this.#recoveryBudget.take(now)) return;
    this.#pilaLimit.allow(node, now);
    const frame = this.book.keys.pila(this.book.nodeId);
    if (origin.relayFrom !== undefined) this.book.out.relay(this.book.nodeId, node, frame, 'PILA');
    else this.book.out.deliver(frame, origin.endpoint, 'PILA');
  }

  /** While packets wait for a peer's key, our PILA is repeated (and the queues of gone peers dropped). */
  repeat(now: number): void {
    for (const node of this.book.pending.nodes()) {
      const peer = this.book.peers.get(node);
      if (!peer) this.book.pending.take(node);
      else if (this.#pilaLimit.since(node, now) >= policy.PILA_REPEAT_MS) this.sendPila(peer, now);
    }
  }

  /** A peer added again later starts a fresh key exchange at once, not after the PILA interval. */
  forget(node: number): void {
    this.#pilaLimit.forget(node);
  }

  clear(): void {
    this.#verifying.clear();
  }
}
