import type { Identity } from '../crypto/index.js';
import { PilotError } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import type { NatMapping } from '../protocol/nat-probe.js';
import type { Packet } from '../protocol/packet.js';
import { classifyDatagram, decodePilm, decodePils } from '../protocol/tunnel.js';
import type { PilaVerdict } from './authenticator.js';
import { BeaconSession } from './beacon-session.js';
import { formatEndpoint, isLoopbackHost, type UdpEndpoint } from './endpoint.js';
import { Handshake } from './handshake.js';
import { LocalKeys } from './local-keys.js';
import { Outbox, type CoreEvent, type Transmit, type VerifyRequest } from './outbox.js';
import { PathKeeper } from './paths.js';
import { PeerBook } from './peer-book.js';
import * as policy from './policy.js';
import type { Origin } from './policy.js';
import { Receiver } from './receive.js';
import { Sender } from './sender.js';
import type { TunnelStats } from './stats.js';
import type { TunnelPeerInfo } from './types.js';

export type { CoreEvent, Transmit, VerifyRequest } from './outbox.js';

export interface TunnelCoreOptions {
  /** Ed25519 identity of this node: signs our key exchange and our proofs to the beacon. */
  identity: Identity;
  /** Default true. Off: PILT both ways, key-exchange frames ignored. */
  encrypt?: boolean;
  /** The beacon's resolved address, if there is one. */
  beacon?: UdpEndpoint;
  log?: Logger;
}

/**
 * The tunnel of PROTOCOL.md §3–4 without sockets, timers or a clock: per-peer AES-GCM contexts set
 * up by authenticated key exchange (PILA), hole punching and relay through the beacon.
 *
 * Feed it datagrams (`handleDatagram`) with their source and the current time, the driver's calls
 * (`send`, `addPeer`, …) with the time, and `handleTimeout(now)` at `nextTimeout()`. Take datagrams
 * to send with `pollTransmit()`, events (packets for the stack among them) with `pollEvent()`, and
 * key exchanges to verify with `pollRequest()`, answered with `verified()`. Packets to batching
 * peers wait for `flush()`, which the driver calls when its synchronous run ends.
 */
export class TunnelCore {
  readonly #out: Outbox;
  readonly #book: PeerBook;
  readonly #beacon: BeaconSession;
  readonly #handshake: Handshake;
  readonly #receiver: Receiver;
  readonly #sender: Sender;
  readonly #paths: PathKeeper;
  #tickAt: number | undefined;
  #closed = false;

  constructor(options: TunnelCoreOptions) {
    const log = options.log ?? silentLogger();
    this.#out = new Outbox(options.beacon, log);
    const keys = new LocalKeys(options.identity);
    this.#book = new PeerBook(this.#out, keys, options.encrypt ?? true, log);
    this.#handshake = new Handshake(
      this.#book,
      (e, now) => this.#receiver.onSealed(e.frame, e.origin, e.batch, now),
      (peer, now) => this.#paths.greet(peer, now),
    );
    this.#beacon = new BeaconSession(
      this.#out,
      (bytes) => keys.sign(bytes),
      () => this.#book.nodeId,
      (endpoint, previous, now) => this.#paths.onObserved(endpoint, previous, now),
    );
    this.#paths = new PathKeeper(this.#book, this.#beacon, this.#handshake);
    this.#receiver = new Receiver(this.#book, this.#handshake, (peer, crypto, kind, origin, now) =>
      this.#paths.onProbe(peer, crypto, kind, origin, now),
    );
    this.#sender = new Sender(this.#book, this.#handshake);
  }

  get nodeId(): number {
    return this.#book.nodeId;
  }

  get encrypted(): boolean {
    return this.#book.encrypt;
  }

  get beacon(): UdpEndpoint | undefined {
    return this.#out.beacon;
  }

  /** Our per-process X25519 public key, as carried in our PILA frames. */
  get x25519PublicKey(): Uint8Array {
    return this.#book.keys.keyPair.publicKey;
  }

  get stats(): TunnelStats {
    return this.#out.stats;
  }

  /** Our endpoint as the beacon last reported it. */
  get observedEndpoint(): string | undefined {
    return this.#beacon.observed;
  }

  setNodeId(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id > 0xffffffff)
      throw new PilotError('invalid_argument', `node id out of range: ${id}`);
    this.#book.nodeId = id;
  }

  /** The NAT mapping a detection found: behind one that maps per destination, the relay comes sooner. */
  setNatMapping(mapping: NatMapping | undefined): void {
    this.#paths.natMapping = mapping;
  }

  /** Adds a peer or replaces its endpoint; with encryption on, starts the key exchange. */
  addPeer(nodeId: number, endpoint: UdpEndpoint, now: number): void {
    const { peer, created } = this.#book.ensure(nodeId, now);
    peer.endpoint = endpoint;
    if (created)
      this.#out.emit({ type: 'peer-added', args: [{ peerNodeId: nodeId, endpoint: formatEndpoint(endpoint) }] });
    if (!this.#book.encrypt || peer.crypto) return;
    const dormant = this.#book.takeDormant(nodeId, now);
    if (dormant) this.#handshake.resume(peer, dormant, now);
    else this.#handshake.sendPila(peer, now);
  }

  hasPeer(nodeId: number): boolean {
    return this.#book.peers.get(nodeId) !== undefined;
  }

  /** True when packets to a node go straight to a loopback address (same host, no relay). */
  pathIsLoopback(nodeId: number): boolean {
    const peer = this.#book.peers.get(nodeId);
    return peer?.endpoint !== undefined && !peer.relay && isLoopbackHost(peer.endpoint.host);
  }

  /** Forgets a node's endpoint and sets its crypto context aside (trust revoked; see PeerBook.remove). */
  removePeer(nodeId: number, now: number): void {
    this.#book.remove(nodeId, now);
    this.#sender.forget(nodeId);
    this.#handshake.forget(nodeId);
  }

  /** Switches a peer to (or from) relaying through the beacon. False when that is not possible. */
  setRelay(nodeId: number, on: boolean, now: number): boolean {
    const book = this.#book;
    if (on && !book.beacon) return false;
    const existing = book.peers.get(nodeId);
    if (!existing && !on) return false;
    const peer = existing ?? book.ensure(nodeId, now).peer;
    if (!peer.endpoint && book.beacon) peer.endpoint = book.beacon;
    if (on) book.markRelay(peer, now);
    else book.leaveRelay(peer);
    return true;
  }

  /** Whether fresh authenticated traffic came straight from the node within `ms`. */
  directSeenWithin(nodeId: number, ms: number, now: number): boolean {
    const at = this.#book.peers.get(nodeId)?.lastDirectAt ?? 0;
    return at > 0 && now - at <= ms;
  }

  /** Lets packets to a node travel several to a PILM frame (the node advertised that it reads them). */
  setBatching(nodeId: number, on: boolean): void {
    const peer = this.#book.peers.get(nodeId);
    if (peer) peer.batching = on;
  }

  /** Sends one packet; false if there is no endpoint for the node. */
  send(nodeId: number, packet: Packet, now: number): boolean {
    return this.#sender.send(nodeId, packet, now);
  }

  /** Whether packets to batching peers wait for `flush()`. */
  get flushPending(): boolean {
    return this.#sender.flushPending;
  }

  /** Seals the packets queued for batching peers since the last flush. */
  flush(): void {
    this.#sender.flush();
  }

  peers(): TunnelPeerInfo[] {
    return [...this.#book.peers.values()].map((p) => ({
      nodeId: p.nodeId,
      endpoint: p.endpoint ? formatEndpoint(p.endpoint) : '',
      encrypted: p.crypto !== undefined,
      authenticated: p.authenticated,
      relay: p.relay,
    }));
  }

  // --- the beacon ---

  registerWithBeacon(now: number): void {
    this.#beacon.register(this.#book.nodeId, now);
  }

  /** Asks the beacon which ip:port it sees this socket as (Discover with node 0). */
  discover(now: number): void {
    this.#beacon.discover(now);
  }

  requestPunch(target: number, now: number): void {
    this.#paths.requestPunch(target, now);
  }

  /** Whether the beacon confirmed our proof of id within `ms` (a Go beacon never does). */
  provenAtBeaconWithin(ms: number, now: number): boolean {
    const at = this.#beacon.provenAt;
    return at > 0 && now - at <= ms;
  }

  /** Sends a NAT probe; replies carrying `token` come out as `nat-probe-reply` events until cancelled. */
  natProbe(token: number, now: number, to?: UdpEndpoint): void {
    this.#beacon.natProbe(token, now, to);
  }

  cancelNatProbe(token: number): void {
    this.#beacon.cancelNatProbe(token);
  }

  // --- input ---

  handleDatagram(data: Uint8Array, from: UdpEndpoint, now: number): void {
    if (this.#closed) return;
    this.#out.received(data.length);
    if (classifyDatagram(data) !== 'beacon') return this.#dispatch(data, { endpoint: from }, now);
    const relayed = this.#beacon.receive(data, from, now);
    if (relayed) this.#dispatch(relayed.frame, { endpoint: from, relayFrom: relayed.sender }, now);
  }

  /** The driver's verdict on a key exchange it was asked to verify (see `pollRequest`). */
  verified(id: number, verdict: PilaVerdict, now: number): void {
    if (!this.#closed) this.#handshake.verified(id, verdict, now);
  }

  nextTimeout(): number | undefined {
    if (this.#closed) return undefined;
    // Before the first tick, one is due at once.
    let at = this.#tickAt ?? 0;
    const beacon = this.#beacon.nextTimeout();
    if (beacon !== undefined && beacon < at) at = beacon;
    const paths = this.#paths.nextTimeout();
    if (paths !== undefined && paths < at) at = paths;
    const prep = this.#book.prep.dueAt;
    if (prep !== undefined && prep < at) at = prep;
    return at;
  }

  /**
   * Runs what is due: punch retries, proof retries, checks after a rebinding, the crypto contexts
   * to make ahead after an exchange (see ContextPrep), and every TICK_MS the periodic work
   * (probing, silent paths, relaying stalled exchanges, keep-alives, PILA repeats, expiry of
   * queued packets).
   */
  handleTimeout(now: number): void {
    if (this.#closed) return;
    this.#beacon.handleTimeout(now);
    this.#book.prep.prepareIfDue(now);
    const tick = this.#tickAt === undefined || now >= this.#tickAt;
    this.#paths.handleTimeout(now, tick);
    if (!tick) return;
    this.#tickAt = now + policy.TICK_MS;
    const book = this.#book;
    this.#out.countDropped('queue_expired', book.pending.expire(now));
    book.early.expire(now);
    this.#handshake.repeat(now);
  }

  // --- output ---

  pollTransmit(): Transmit | undefined {
    return this.#out.pollTransmit();
  }

  pollEvent(): CoreEvent | undefined {
    return this.#out.pollEvent();
  }

  pollRequest(): VerifyRequest | undefined {
    return this.#out.pollRequest();
  }

  /** The driver handed a transmit to the network (counted in `stats`). */
  sent(t: Transmit): void {
    this.#out.sent(t);
  }

  /** The driver could not send a transmit. */
  sendFailed(t: Transmit, reason: 'unreachable' | 'send_error'): void {
    this.#out.sendFailed(t, reason);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#beacon.close();
    this.#book.clear();
    this.#sender.clear();
    this.#handshake.clear();
    this.#paths.clear();
    this.#out.close();
  }

  #dispatch(data: Uint8Array, origin: Origin, now: number): void {
    const out = this.#out;
    switch (classifyDatagram(data)) {
      case 'PILS': {
        const frame = decodePils(data);
        if (!frame.ok) return out.drop('malformed', origin.endpoint);
        if (!this.#book.encrypt) return out.drop('encryption_off', origin.endpoint, frame.value.senderNode);
        return this.#receiver.onSealed(frame.value, origin, false, now);
      }
      case 'PILM': {
        const frame = decodePilm(data);
        if (!frame.ok) return out.drop('malformed', origin.endpoint);
        if (!this.#book.encrypt) return out.drop('encryption_off', origin.endpoint, frame.value.senderNode);
        return this.#receiver.onSealed(frame.value, origin, true, now);
      }
      case 'PILA':
        return this.#handshake.onPila(data, origin);
      case 'PILK':
        return this.#handshake.onPilk(data, origin, now);
      case 'PILT':
        return this.#receiver.onPilt(data, origin, now);
      case 'PILP':
        return this.#paths.onPunch(data, origin, now);
      case 'beacon':
        // Only reachable for a relayed frame: no nesting.
        return out.drop('malformed', origin.endpoint, origin.relayFrom);
      default:
        return out.drop('malformed', origin.endpoint);
    }
  }
}
