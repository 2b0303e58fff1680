import { EventEmitter } from 'node:events';
import { PilotError } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import { BROADCAST_NODE } from '../protocol/address.js';
import { decodePacket, encodePacket, encodePacketHeader, type Packet } from '../protocol/packet.js';
import { decodePacketBatch, encodeBatchedHeader, encodePacketBatch, isBatchable } from '../protocol/packet-batch.js';
import {
  classifyDatagram,
  decodePila,
  decodePilk,
  decodePilm,
  decodePils,
  decodePilt,
  encodePilmHeader,
  encodePils,
  encodePilsHeader,
  encodePilt,
  MAGIC_PILM,
  PATH_PROBE_REPLY,
  PATH_PROBE_REQUEST,
  PILS_MIN_SIZE,
  type PilsFrame,
} from '../protocol/tunnel.js';
import { Authenticator } from './authenticator.js';
import { groupForBatches, SendBatcher } from './batcher.js';
import { BeaconClient } from './beacon-client.js';
import { detectNat, type NatReport } from './nat-detect.js';
import {
  endpointEquals,
  formatEndpoint,
  isLoopbackHost,
  parseEndpoint,
  parseListenAddress,
  type UdpEndpoint,
} from './endpoint.js';
import { TokenBucket } from '../rate-limit.js';
import { IntervalLimiter } from './limits.js';
import { PeerCrypto } from './peer-crypto.js';
import { PeerTable, isRetiredKey, retireKey, type PeerState } from './peer-table.js';
import { BoundedQueues } from './queues.js';
import type { DropReason, TunnelStats } from './stats.js';
import type { TunnelEvents, TunnelOptions, TunnelPeerInfo } from './types.js';
import { UdpSocket } from './udp-socket.js';
import { Wire } from './wire.js';
import * as policy from './policy.js';
import type { Origin } from './policy.js';

export type { TunnelOptions, TunnelPeerInfo, EstablishedEvent, DroppedEvent, TunnelEvents } from './types.js';

/**
 * The UDP tunnel of PROTOCOL.md §3–4: one socket carrying peer, beacon and relayed traffic,
 * per-peer AES-GCM contexts set up by authenticated key exchange (PILA), hole punching and relay.
 */
export class Tunnel extends EventEmitter<TunnelEvents> {
  readonly localPort: number;
  readonly #wire: Wire;
  readonly #beaconClient: BeaconClient;
  readonly #encrypt: boolean;
  readonly #auth: Authenticator;
  readonly #log: Logger;
  readonly #peers = new PeerTable(policy.MAX_PEERS);
  readonly #pending = new BoundedQueues<Uint8Array>(policy.QUEUE_PER_PEER, policy.QUEUE_PEERS, policy.QUEUE_MAX_AGE_MS);
  readonly #batcher = new SendBatcher(
    (node, packets) => this.#sendBatch(node, packets),
    (node, packets, err) => {
      this.#wire.countDropped('batch_error', packets);
      this.#log.warn({ node, packets, err: String(err) }, 'packets to a node could not be sent');
    },
  );
  readonly #early = new BoundedQueues<{ frame: PilsFrame; origin: Origin; batch: boolean }>(
    policy.EARLY_PER_PEER,
    policy.EARLY_PEERS,
    policy.EARLY_MAX_AGE_MS,
  );
  readonly #pilaLimit = new IntervalLimiter<number>(policy.PILA_MIN_INTERVAL_MS, policy.MAX_PEERS);
  readonly #recoveryLimit = new IntervalLimiter<number>(policy.RECOVERY_INTERVAL_MS, policy.MAX_PEERS);
  readonly #recoveryBudget = new TokenBucket(20, 40);
  readonly #probeAnswers = new IntervalLimiter<number>(policy.PROBE_ANSWER_INTERVAL_MS, policy.MAX_PEERS);
  readonly #punchAnswers = new IntervalLimiter<number>(policy.PUNCH_ANSWER_INTERVAL_MS, policy.MAX_PEERS);
  /** What the last NAT detection found (undefined until one ran). */
  #nat: NatReport | undefined;
  /** Peers currently relayed: their direct path is probed in the background. */
  readonly #relayed = new Set<number>();
  readonly #timer: NodeJS.Timeout;
  #nodeId = 0;
  #closed = false;
  /** When our own endpoint (as the beacon sees it) last changed (0: never). */
  #reboundAt = 0;
  readonly #rebindTimers = new Set<NodeJS.Timeout>();
  /** When a check of a silent path last asked the beacon where it sees us. */
  #pathCheckDiscoverAt = 0;

  private constructor(socket: UdpSocket, options: TunnelOptions, beacon: UdpEndpoint | undefined) {
    super();
    this.localPort = socket.port;
    this.#encrypt = options.encrypt ?? true;
    this.#auth = new Authenticator(options.identity, options.keys);
    this.#log = options.log ?? silentLogger();
    this.#wire = new Wire(socket, beacon, this.#log, (event) => this.emit('dropped', event));
    this.#beaconClient = new BeaconClient(
      this.#wire,
      (bytes) => options.identity.sign(bytes),
      () => this.#nodeId,
      (endpoint, previous) => this.#onObserved(endpoint, previous),
    );
    this.#timer = setInterval(() => this.#tick(), policy.TICK_MS);
    this.#timer.unref();
  }

  static async open(options: TunnelOptions): Promise<Tunnel> {
    const listen = parseListenAddress(options.listen);
    let tunnel: Tunnel | undefined;
    const socket = await UdpSocket.bind(
      listen,
      (data, from) => {
        if (tunnel) tunnel.#onDatagram(data, from);
      },
      (err) => {
        if (tunnel) tunnel.#log.warn({ err: err.message }, 'tunnel socket error');
      },
    );
    let beacon: UdpEndpoint | undefined;
    try {
      beacon = options.beacon ? await socket.resolve(options.beacon) : undefined;
    } catch (err) {
      await socket.close();
      throw err;
    }
    tunnel = new Tunnel(socket, options, beacon);
    return tunnel;
  }

  get nodeId(): number {
    return this.#nodeId;
  }

  get encrypted(): boolean {
    return this.#encrypt;
  }

  /** Our per-process X25519 public key, as carried in our PILA frames. */
  get x25519PublicKey(): Uint8Array {
    return this.#auth.keyPair.publicKey;
  }

  setNodeId(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id > 0xffffffff)
      throw new PilotError('invalid_argument', `node id out of range: ${id}`);
    this.#nodeId = id;
  }

  /** Adds a peer or replaces its endpoint; with encryption on, starts the key exchange. */
  addPeer(nodeId: number, endpoint: string): void {
    const ep = parseEndpoint(endpoint);
    if (!ep)
      throw new PilotError(
        'invalid_argument',
        `invalid peer endpoint "${endpoint}"`,
        'expected ip:port or [ipv6]:port',
      );
    const { peer, created } = this.#ensurePeer(nodeId);
    peer.endpoint = ep;
    if (created) this.emit('peer-added', { peerNodeId: nodeId, endpoint: formatEndpoint(ep) });
    if (this.#encrypt && !peer.crypto) this.#sendPila(peer);
  }

  /** True when packets to a node go straight to a loopback address (same host, no relay). */
  pathIsLoopback(nodeId: number): boolean {
    const peer = this.#peers.get(nodeId);
    return peer?.endpoint !== undefined && !peer.relay && isLoopbackHost(peer.endpoint.host);
  }

  hasPeer(nodeId: number): boolean {
    return this.#peers.get(nodeId) !== undefined;
  }

  /** Forgets the endpoint and crypto context of a node (trust revoked). */
  removePeer(nodeId: number): void {
    this.#peers.delete(nodeId);
    this.#relayed.delete(nodeId);
    this.#batcher.forget(nodeId);
    // A peer added again later starts a fresh key exchange at once, not after the PILA interval.
    this.#pilaLimit.forget(nodeId);
    this.#pending.take(nodeId);
    this.#early.take(nodeId);
  }

  /** Switches a peer to (or from) relaying through the beacon. False when that is not possible. */
  setRelay(nodeId: number, on: boolean): boolean {
    if (on && !this.#wire.beacon) return false;
    const existing = this.#peers.get(nodeId);
    if (!existing && !on) return false;
    const peer = existing ?? this.#ensurePeer(nodeId).peer;
    if (!peer.endpoint && this.#wire.beacon) peer.endpoint = this.#wire.beacon;
    if (on) this.#markRelay(peer);
    else this.#leaveRelay(peer);
    return true;
  }

  /** Whether fresh authenticated traffic came straight from the node within `ms`. */
  directSeenWithin(nodeId: number, ms: number, now = Date.now()): boolean {
    const at = this.#peers.get(nodeId)?.lastDirectAt ?? 0;
    return at > 0 && now - at <= ms;
  }

  /**
   * Lets packets to a node travel several to a PILM frame (the node advertised that it reads them).
   * Off for every peer until turned on; a Go peer never receives one.
   */
  setBatching(nodeId: number, on: boolean): void {
    const peer = this.#peers.get(nodeId);
    if (peer) peer.batching = on;
  }

  /** Sends one packet; false if there is no endpoint for the node. */
  send(nodeId: number, packet: Packet): boolean {
    const peer = this.#peers.get(nodeId);
    if (!peer?.endpoint) return false;
    const now = Date.now();
    // Silence counts only while we keep sending: a gap resets it.
    if (peer.unansweredSince === 0 || now - peer.lastPacketAt > policy.PATH_IDLE_MS) {
      peer.unansweredSince = now;
      peer.checkSince = 0;
    }
    peer.lastPacketAt = now;
    if (this.#encrypt && peer.crypto) {
      if (peer.batching && !peer.relay) this.#batcher.add(nodeId, packet);
      else this.#sealOne(peer, peer.crypto, packet);
      return true;
    }
    const bytes = encodePacket(packet);
    if (!this.#encrypt) {
      this.#transmit(peer, encodePilt(bytes), 'PILT');
    } else {
      const queued = this.#pending.add(nodeId, bytes, Date.now());
      if (queued === 'refused') this.#drop('queue_full', peer.endpoint, nodeId);
      if (queued === 'dropped_oldest') this.#drop('queue_overflow', peer.endpoint, nodeId);
      if (peer.exchangeSince === 0 && !peer.relay) peer.exchangeSince = Date.now();
      this.#sendPila(peer);
    }
    return true;
  }

  peers(): TunnelPeerInfo[] {
    return [...this.#peers.values()].map((p) => ({
      nodeId: p.nodeId,
      endpoint: p.endpoint ? formatEndpoint(p.endpoint) : '',
      encrypted: p.crypto !== undefined,
      authenticated: p.authenticated,
      relay: p.relay,
    }));
  }

  /** The NAT behaviour found by the last `detectNat()`, if any. */
  get nat(): NatReport | undefined {
    return this.#nat;
  }

  /** Our endpoint as the beacon last reported it. */
  get observedEndpoint(): string | undefined {
    return this.#beaconClient.observed;
  }

  /**
   * Finds how the NAT in front of this socket maps and filters, with NAT probes to the beacon
   * (a pilot-ts extension; against a Go beacon the answer is "unknown").
   */
  async detectNat(timeoutMs = 800): Promise<NatReport> {
    const report = await detectNat(this.#beaconClient, this.#wire.beacon, this.localPort, timeoutMs);
    if (!this.#closed) this.#nat = report;
    return report;
  }

  get stats(): TunnelStats {
    return this.#wire.stats;
  }

  /** Asks the beacon which ip:port it sees this socket as (Discover with node 0), from this socket. */
  discoverEndpoint(timeoutMs = 5000): Promise<string | undefined> {
    return this.#closed ? Promise.resolve(undefined) : this.#beaconClient.discover(timeoutMs);
  }

  registerWithBeacon(): void {
    this.#beaconClient.register(this.#nodeId);
  }

  /** Whether the beacon confirmed our proof of id within `ms` (a Go beacon never does). */
  provenAtBeaconWithin(ms: number, now = Date.now()): boolean {
    const at = this.#beaconClient.provenAt;
    return at > 0 && now - at <= ms;
  }

  requestPunch(target: number): void {
    this.#beaconClient.requestPunch(this.#nodeId, target);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    for (const t of this.#rebindTimers) clearTimeout(t);
    this.#rebindTimers.clear();
    this.#beaconClient.close();
    this.#peers.clear();
    this.#relayed.clear();
    this.#batcher.clear();
    this.#pending.clear();
    this.#early.clear();
    await this.#wire.close();
  }

  // --- receive path ---

  #onDatagram(data: Buffer, from: UdpEndpoint): void {
    if (this.#closed) return;
    this.#wire.received(data.length);
    if (classifyDatagram(data) !== 'beacon') return this.#dispatch(data, { endpoint: from });
    const relayed = this.#beaconClient.receive(data, from);
    if (relayed) this.#dispatch(relayed.frame, { endpoint: from, relayFrom: relayed.sender });
  }

  #dispatch(data: Uint8Array, origin: Origin): void {
    switch (classifyDatagram(data)) {
      case 'PILS': {
        const frame = decodePils(data);
        if (!frame.ok) return this.#drop('malformed', origin.endpoint);
        if (!this.#encrypt) return this.#drop('encryption_off', origin.endpoint, frame.value.senderNode);
        return this.#onSealed(frame.value, origin, false);
      }
      case 'PILM': {
        const frame = decodePilm(data);
        if (!frame.ok) return this.#drop('malformed', origin.endpoint);
        if (!this.#encrypt) return this.#drop('encryption_off', origin.endpoint, frame.value.senderNode);
        return this.#onSealed(frame.value, origin, true);
      }
      case 'PILA':
        return this.#onPila(data, origin);
      case 'PILK': {
        const frame = decodePilk(data);
        if (!frame.ok) return this.#drop('malformed', origin.endpoint);
        if (!this.#encrypt) return this.#drop('encryption_off', origin.endpoint, frame.value.senderNode);
        // Anonymous exchange refused: we require an identity; show ours so the peer can use PILA.
        this.#drop('anonymous_key_exchange', origin.endpoint, frame.value.senderNode);
        return this.#sendRecoveryPila(frame.value.senderNode, origin);
      }
      case 'PILT':
        return this.#onPilt(data, origin);
      case 'PILP':
        return this.#onPunch(data, origin);
      case 'beacon':
        // Only reachable for a relayed frame: no nesting.
        return this.#drop('malformed', origin.endpoint, origin.relayFrom);
      default:
        return this.#drop('malformed', origin.endpoint);
    }
  }

  #onPila(data: Uint8Array, origin: Origin): void {
    const decoded = decodePila(data);
    if (!decoded.ok) return this.#drop('malformed', origin.endpoint);
    const frame = decoded.value;
    const node = frame.senderNode;
    if (!this.#encrypt) return this.#drop('encryption_off', origin.endpoint, node);
    if (origin.relayFrom !== undefined && origin.relayFrom !== node)
      return this.#drop('relay_sender_mismatch', origin.endpoint, node);
    if (node === this.#nodeId) return this.#drop('own_node_id', origin.endpoint, node);
    const known = this.#peers.get(node);
    if (known && isRetiredKey(known, frame.x25519Public))
      return this.#drop('stale_key_exchange', origin.endpoint, node);
    const key = this.#auth.deriveKey(frame.x25519Public);
    if (!key) return this.#drop('bad_key', origin.endpoint, node);
    this.#auth.verify(frame).then(
      (verdict) => {
        if (this.#closed) return;
        if (verdict !== 'ok') return this.#drop(verdict, origin.endpoint, node);
        this.#acceptPila(node, frame.x25519Public, key, origin);
      },
      (err: unknown) => this.#log.warn({ err: String(err), node }, 'PILA verification failed'),
    );
  }

  #acceptPila(node: number, x25519: Uint8Array, key: Uint8Array, origin: Origin): void {
    const existing = this.#peers.get(node);
    if (existing && isRetiredKey(existing, x25519)) return this.#drop('stale_key_exchange', origin.endpoint, node);
    const peer = this.#adoptPeer(node, origin);
    const previous = peer.crypto;
    const rekeyed = previous !== undefined && !previous.isKeyFrom(x25519);
    // Same X25519 key means same AES key: our send counter and the receive windows carry on,
    // so a repeated or replayed PILA can neither cause nonce reuse nor re-admit old frames.
    let crypto = previous;
    if (!crypto || rekeyed) {
      if (previous) retireKey(peer, previous.peerX25519);
      crypto = new PeerCrypto(key, x25519);
      peer.crypto = crypto;
      if (origin.relayFrom === undefined) this.#updateEndpoint(peer, origin.endpoint);
    }
    peer.authenticated = true;
    peer.lastActive = Date.now();
    peer.exchangeSince = 0;
    // Only a new key arriving through the relay moves the path there: a PILA repeating the key in
    // use may be a replay (anyone can capture one), and the path stays as it is.
    if (origin.relayFrom !== undefined && (!previous || rekeyed)) this.#markRelay(peer);
    this.emit('established', { peerNodeId: node, authenticated: true, rekeyed, relay: peer.relay });
    if (!previous || rekeyed) this.#sendPila(peer, true);
    else if (this.#pilaLimit.since(node, Date.now()) >= policy.PILA_REPLY_QUIET_MS) this.#sendPila(peer);
    for (const bytes of this.#pending.take(node)) this.#sendSealed(peer, crypto, bytes);
    for (const early of this.#early.take(node)) this.#onSealed(early.frame, early.origin, early.batch);
  }

  /** A PILS frame, or with `batch` a PILM frame (several packets). */
  #onSealed(frame: PilsFrame, origin: Origin, batch: boolean): void {
    const node = frame.senderNode;
    if (origin.relayFrom !== undefined && origin.relayFrom !== node)
      return this.#drop('relay_sender_mismatch', origin.endpoint, node);
    const peer = this.#peers.get(node);
    const crypto = peer?.crypto;
    if (!peer || !crypto) {
      // Possibly we restarted, or the frame overtook the PILA: keep it briefly and show our key.
      this.#early.add(node, { frame, origin, batch }, Date.now());
      this.#drop('no_context', origin.endpoint, node);
      return this.#sendRecoveryPila(node, origin);
    }
    const opened = crypto.open(frame.nonce, frame.sealed, batch ? MAGIC_PILM : undefined);
    if (!opened.ok) {
      const code = opened.error.code;
      if (code === 'replay')
        this.emit('nonce-replay', { peerNodeId: node, counter: Buffer.from(frame.nonce).readBigUInt64BE(4) });
      this.#drop(code === 'truncated' ? 'malformed' : code, origin.endpoint, node);
      // The peer may hold a newer key whose PILA we missed; offer ours to its known address only.
      if (code === 'auth_failed' && peer.endpoint)
        this.#sendRecoveryPila(node, { endpoint: peer.endpoint, relayFrom: peer.relay ? node : undefined });
      return;
    }
    // The AEAD and the replay window proved a fresh frame from the sender: follow a NAT rebinding,
    // and the path it came by (a relayed peer heard directly is reachable directly again).
    const now = Date.now();
    peer.unansweredSince = 0;
    peer.checkSince = 0;
    if (origin.relayFrom === undefined) {
      this.#updateEndpoint(peer, origin.endpoint);
      peer.lastDirectAt = now;
      this.#leaveRelay(peer);
    } else {
      this.#markRelay(peer);
    }
    peer.lastActive = now;
    if (!batch && opened.value.length === 1) return this.#onProbe(peer, crypto, opened.value[0] as number, origin);
    let plaintexts: Uint8Array[] = [opened.value];
    if (batch) {
      const split = decodePacketBatch(opened.value);
      if (!split.ok) return this.#drop('malformed', origin.endpoint, node);
      plaintexts = split.value;
    }
    peer.lastPacketAt = now;
    for (const bytes of plaintexts) {
      // AES-GCM already proved these bytes intact: the CRC-32 inside cannot add anything.
      const packet = this.#checkInner(bytes, node, origin, false);
      if (packet) this.emit('packet', packet, node);
    }
  }

  #onPilt(data: Uint8Array, origin: Origin): void {
    if (this.#encrypt) return this.#drop('plaintext', origin.endpoint, origin.relayFrom);
    const frame = decodePilt(data);
    if (!frame.ok) return this.#drop('malformed', origin.endpoint);
    const probe = decodePacket(frame.value.packet);
    if (!probe.ok)
      return this.#drop(probe.error.code === 'bad_checksum' ? 'bad_checksum' : 'malformed', origin.endpoint);
    const node = probe.value.src.node;
    const packet = this.#checkInner(frame.value.packet, origin.relayFrom ?? node, origin);
    if (!packet) return;
    const peer = this.#adoptPeer(node, origin);
    if (origin.relayFrom !== undefined) this.#markRelay(peer);
    peer.lastActive = Date.now();
    this.emit('packet', packet, node);
  }

  /** Decodes the inner packet and binds it to the tunnel sender and to us (§14 #9). */
  #checkInner(bytes: Uint8Array, senderNode: number, origin: Origin, verifyChecksum = true): Packet | undefined {
    const decoded = decodePacket(bytes, { verifyChecksum });
    if (!decoded.ok) {
      this.#drop(decoded.error.code === 'bad_checksum' ? 'bad_checksum' : 'malformed', origin.endpoint, senderNode);
      return undefined;
    }
    const packet = decoded.value;
    if (packet.src.node !== senderNode) {
      this.#drop('spoofed_source', origin.endpoint, senderNode);
      return undefined;
    }
    if (packet.dst.node !== this.#nodeId && packet.dst.node !== BROADCAST_NODE) {
      this.#drop('wrong_destination', origin.endpoint, senderNode);
      return undefined;
    }
    return packet;
  }

  // --- peer bookkeeping ---

  #ensurePeer(nodeId: number): { peer: PeerState; created: boolean } {
    const { peer, created, evicted } = this.#peers.ensure(nodeId, Date.now());
    if (evicted !== undefined) {
      this.#pending.take(evicted);
      this.#early.take(evicted);
    }
    return { peer, created };
  }

  /** The peer entry for a node that proved itself (or any sender, with encryption off). */
  #adoptPeer(nodeId: number, origin: Origin): PeerState {
    const { peer, created } = this.#ensurePeer(nodeId);
    if (!peer.endpoint) peer.endpoint = origin.relayFrom === undefined ? origin.endpoint : this.#wire.beacon;
    if (created && peer.endpoint)
      this.emit('peer-added', { peerNodeId: nodeId, endpoint: formatEndpoint(peer.endpoint) });
    return peer;
  }

  #updateEndpoint(peer: PeerState, endpoint: UdpEndpoint): void {
    if (endpointEquals(peer.endpoint, endpoint)) return;
    peer.endpoint = endpoint;
    this.emit('endpoint-changed', { peerNodeId: peer.nodeId, endpoint: formatEndpoint(endpoint) });
  }

  #markRelay(peer: PeerState): void {
    if (!peer.relay) {
      peer.relay = true;
      peer.exchangeSince = 0;
      peer.probeIntervalMs = policy.PROBE_FIRST_MS;
      peer.probeAt = Date.now() + policy.PROBE_FIRST_MS;
      this.#relayed.add(peer.nodeId);
    }
    if (peer.relayAnnounced) return;
    peer.relayAnnounced = true;
    this.emit('relay-activated', { peerNodeId: peer.nodeId });
  }

  /** Back to the direct path (the relay is never sticky). */
  #leaveRelay(peer: PeerState): void {
    if (!peer.relay) return;
    peer.relay = false;
    peer.relayAnnounced = false;
    this.#relayed.delete(peer.nodeId);
    if (peer.endpoint)
      this.emit('direct-upgraded', { peerNodeId: peer.nodeId, endpoint: formatEndpoint(peer.endpoint) });
  }

  /** A path probe: a request heard directly is answered directly (at most every PROBE_ANSWER_INTERVAL_MS). */
  #onProbe(peer: PeerState, crypto: PeerCrypto, kind: number, origin: Origin): void {
    if (kind !== PATH_PROBE_REQUEST && kind !== PATH_PROBE_REPLY)
      return this.#drop('malformed', origin.endpoint, peer.nodeId);
    peer.probes = true;
    if (
      kind === PATH_PROBE_REQUEST &&
      origin.relayFrom === undefined &&
      this.#probeAnswers.allow(peer.nodeId, Date.now())
    ) {
      this.#sendProbe(peer, crypto, PATH_PROBE_REPLY, origin.endpoint);
    }
  }

  /** Seals one probe byte and sends it straight to `to`, whatever the peer's path. */
  #sendProbe(peer: PeerState, crypto: PeerCrypto, kind: number, to: UdpEndpoint): void {
    peer.lastSentAt = Date.now();
    const sealed = crypto.send.seal(Uint8Array.of(kind));
    this.#deliver(encodePils({ senderNode: this.#nodeId, nonce: sealed.nonce, sealed: sealed.sealed }), to, 'probe');
  }

  /** Relayed peers whose direct endpoint is known are probed, with back-off. */
  #probeRelayed(now: number): void {
    for (const node of this.#relayed) {
      const peer = this.#peers.get(node);
      if (!peer?.relay) {
        this.#relayed.delete(node);
        continue;
      }
      if (now < peer.probeAt || !peer.crypto) continue;
      // The beacon has both sides punch at once: the peer's PILP (with its id) lets us probe the
      // address it comes from, which is where its NAT expects us.
      if (this.#nodeId !== 0) this.requestPunch(node);
      if (peer.endpoint && !endpointEquals(peer.endpoint, this.#wire.beacon))
        this.#sendProbe(peer, peer.crypto, PATH_PROBE_REQUEST, peer.endpoint);
      peer.probeIntervalMs = Math.min(
        Math.max(peer.probeIntervalMs, policy.PROBE_FIRST_MS) * 2,
        policy.PROBE_MAX_MS,
        policy.PROBE_CAP_MS,
      );
      peer.probeAt = now + peer.probeIntervalMs;
    }
  }

  /**
   * A PILP carrying a node id (pilot-ts; the reference's carries none): the node punched towards us
   * from that address. If we are still trying to reach it, answer there at once: our key exchange
   * when it has none yet, a path probe when it is relayed. Nothing is learnt from the unauthenticated
   * datagram itself: the endpoint moves only when an authenticated answer arrives from it.
   */
  #onPunch(data: Uint8Array, origin: Origin): void {
    if (origin.relayFrom !== undefined || data.length < 8) return;
    const node = Buffer.from(data.buffer, data.byteOffset, data.length).readUInt32BE(4);
    const peer = node === 0 || node === this.#nodeId ? undefined : this.#peers.get(node);
    if (!peer || !this.#encrypt) return;
    const now = Date.now();
    // A direct peer is answered only while its path is in doubt: it is silent, or we just moved.
    const doubted =
      (peer.unansweredSince !== 0 && now - peer.unansweredSince >= policy.SILENCE_MS) ||
      (this.#reboundAt !== 0 && now - this.#reboundAt <= policy.REBIND_PUNCH_MS);
    if (peer.crypto && !peer.relay && !doubted) return;
    if (!this.#punchAnswers.allow(node, now)) return;
    if (!peer.crypto) {
      this.#pilaLimit.allow(node, now);
      this.#deliver(this.#auth.pila(this.#nodeId), origin.endpoint, 'PILA');
    } else {
      this.#sendProbe(peer, peer.crypto, PATH_PROBE_REQUEST, origin.endpoint);
    }
  }

  /**
   * The beacon saw us at a new endpoint (our NAT rebound, or our address changed): prove our id to
   * it there (it keeps a proven node where it proved itself, and refuses our punch requests and
   * relayed frames from elsewhere), then have the peers in use punch towards the new endpoint, so
   * that their NATs let our traffic in and they follow it.
   */
  #onObserved(endpoint: string, previous: string | undefined): void {
    if (previous !== undefined && previous !== endpoint && !this.#closed) {
      const now = Date.now();
      this.#reboundAt = now;
      this.#log.info(
        { previous, endpoint },
        'the beacon sees us at a new endpoint; proving our id there and punching to our peers again',
      );
      if (this.#nodeId !== 0) this.#beaconClient.register(this.#nodeId);
      const inUse = [...this.#peers.values()]
        .filter(
          (p) =>
            p.crypto &&
            !p.relay &&
            p.endpoint &&
            now - p.lastPacketAt <= policy.PEER_IN_USE_MS &&
            !isLoopbackHost(p.endpoint.host),
        )
        .map((p) => p.nodeId);
      // After the proof (a round trip or two): a punch request and a probe for each.
      const t = setTimeout(() => {
        this.#rebindTimers.delete(t);
        for (const node of inUse) {
          const peer = this.#peers.get(node);
          if (this.#closed || !peer?.crypto || peer.relay || !peer.endpoint) continue;
          this.requestPunch(node);
          this.#sendProbe(peer, peer.crypto, PATH_PROBE_REQUEST, peer.endpoint);
        }
      }, policy.REBIND_CHECK_DELAY_MS);
      t.unref();
      this.#rebindTimers.add(t);
    }
    this.emit('observed-endpoint', { endpoint });
  }

  /**
   * A direct path that stopped answering while we send: ask the beacon where it sees us (a rebinding
   * shows there), have both sides punch again and probe; relay a peer that answers probes if this
   * goes on (the relay is left again as soon as the direct path answers).
   */
  #checkSilentPaths(now: number): void {
    for (const peer of this.#peers.values()) {
      if (!peer.crypto || peer.relay || !peer.endpoint || peer.unansweredSince === 0 || now < peer.checkAt) continue;
      if (now - peer.unansweredSince < policy.SILENCE_MS || now - peer.lastPacketAt > policy.PATH_IDLE_MS) continue;
      if (isLoopbackHost(peer.endpoint.host)) continue;
      if (peer.checkSince === 0) {
        peer.checkSince = now;
        this.#log.info(
          { node: peer.nodeId, silent_ms: now - peer.unansweredSince },
          'no answer on the direct path; checking it',
        );
      } else if (peer.probes && this.#wire.beacon && now - peer.checkSince >= policy.SILENCE_RELAY_MS) {
        this.#log.info({ node: peer.nodeId }, 'direct path still silent; relaying through the beacon while probing it');
        this.#markRelay(peer);
        continue;
      }
      peer.checkAt = now + policy.PATH_CHECK_MS;
      if (this.#nodeId !== 0 && this.#wire.beacon) {
        if (now - this.#pathCheckDiscoverAt >= policy.PATH_CHECK_MS) {
          this.#pathCheckDiscoverAt = now;
          this.#beaconClient.keepalive(this.#nodeId);
        }
        this.requestPunch(peer.nodeId);
      }
      this.#sendProbe(peer, peer.crypto, PATH_PROBE_REQUEST, peer.endpoint);
    }
  }

  /** Key exchanges unanswered straight from the peer for long enough go through the relay. */
  #relayStalled(now: number): void {
    if (!this.#wire.beacon) return;
    const after = this.#nat?.mapping === 'endpoint-dependent' ? policy.RELAY_AFTER_SYMMETRIC_MS : policy.RELAY_AFTER_MS;
    for (const node of this.#pending.nodes()) {
      const peer = this.#peers.get(node);
      if (!peer || peer.crypto || peer.relay || peer.exchangeSince === 0 || now - peer.exchangeSince < after) continue;
      if (!peer.endpoint || isLoopbackHost(peer.endpoint.host)) continue;
      this.#log.info(
        { node },
        'no key exchange on the direct path; relaying through the beacon while punching goes on',
      );
      this.#markRelay(peer);
      this.#sendPila(peer, true);
    }
  }

  /**
   * Keep-alives that hold NAT mappings: towards the beacon (so punch commands and relayed frames
   * reach us), and towards peers in use, each only when nothing else went there for KEEPALIVE_MS.
   */
  #keepalive(now: number): void {
    if (this.#nodeId !== 0 && this.#wire.beacon && now - this.#beaconClient.lastSentAt >= policy.KEEPALIVE_MS)
      this.#beaconClient.keepalive(this.#nodeId);
    for (const peer of this.#peers.values()) {
      if (!peer.crypto || peer.relay || !peer.endpoint || now - peer.lastPacketAt > policy.PEER_IN_USE_MS) continue;
      if (now - peer.lastSentAt < policy.KEEPALIVE_MS || isLoopbackHost(peer.endpoint.host)) continue;
      // A sealed probe reply: answered by nobody, dropped by a Go peer.
      this.#sendProbe(peer, peer.crypto, PATH_PROBE_REPLY, peer.endpoint);
    }
  }

  #tick(): void {
    const now = Date.now();
    this.#probeRelayed(now);
    this.#checkSilentPaths(now);
    this.#relayStalled(now);
    this.#keepalive(now);
    const expired = this.#pending.expire(now);
    this.#wire.countDropped('queue_expired', expired);
    this.#early.expire(now);
    for (const node of this.#pending.nodes()) {
      const peer = this.#peers.get(node);
      if (!peer) this.#pending.take(node);
      else if (this.#pilaLimit.since(node, now) >= policy.PILA_REPEAT_MS) this.#sendPila(peer);
    }
  }

  // --- send path ---

  #sendPila(peer: PeerState, force = false): void {
    const now = Date.now();
    if (!this.#pilaLimit.allow(peer.nodeId, now) && !force) return;
    this.#transmit(peer, this.#auth.pila(this.#nodeId), 'PILA');
  }

  /** PILA to a sender that cannot talk to us yet; limited per node and in total (it is larger than what triggers it). */
  #sendRecoveryPila(node: number, origin: Origin): void {
    const now = Date.now();
    if (!this.#recoveryLimit.allow(node, now) || !this.#recoveryBudget.take(now)) return;
    this.#pilaLimit.allow(node, now);
    const frame = this.#auth.pila(this.#nodeId);
    if (origin.relayFrom !== undefined) this.#relay(node, frame, 'PILA');
    else this.#deliver(frame, origin.endpoint, 'PILA');
  }

  /** Header and payload are sealed as two pieces and sent as a gathered datagram: no copy. */
  #sealOne(peer: PeerState, crypto: PeerCrypto, packet: Packet): void {
    const { nonce, chunks } = crypto.send.sealParts([encodePacketHeader(packet), packet.payload]);
    this.#transmit(peer, [encodePilsHeader(this.#nodeId, nonce), ...chunks], 'PILS');
  }

  /** The packets one run sent to a batching peer: as few PILM frames as fit its path (no CRC-32 to compute). */
  #sendBatch(node: number, packets: Packet[]): void {
    const peer = this.#peers.get(node);
    const crypto = peer?.crypto;
    // Gone or re-keying meanwhile: lost like any datagram (the transport retransmits).
    if (!peer?.endpoint || !crypto) return;
    // Switched to the relay meanwhile: relayed traffic stays one packet per frame, as in send().
    if (peer.relay) {
      for (const p of packets) this.#sealOne(peer, crypto, p);
      return;
    }
    const datagram = this.pathIsLoopback(node) ? policy.BATCH_DATAGRAM_LOOPBACK : policy.BATCH_DATAGRAM_PATH;
    for (const group of groupForBatches(packets, datagram - PILS_MIN_SIZE)) {
      // A batch of one (a large segment) is sealed from its header and payload, without a copy.
      const only = group.length === 1 ? (group[0] as Packet) : undefined;
      // Too large for a batch's u16 length: sent alone as PILS (dropped there if UDP cannot carry it).
      if (only && !isBatchable(only)) {
        this.#sealOne(peer, crypto, only);
        continue;
      }
      const parts = only ? [encodeBatchedHeader(only), only.payload] : [encodePacketBatch(group)];
      const { nonce, chunks } = crypto.send.sealParts(parts, MAGIC_PILM);
      this.#transmit(peer, [encodePilmHeader(this.#nodeId, nonce), ...chunks], 'PILM');
    }
  }

  #sendSealed(peer: PeerState, crypto: PeerCrypto, packetBytes: Uint8Array): void {
    const sealed = crypto.send.seal(packetBytes);
    this.#transmit(peer, encodePils({ senderNode: this.#nodeId, nonce: sealed.nonce, sealed: sealed.sealed }), 'PILS');
  }

  #transmit(peer: PeerState, frame: Uint8Array | readonly Uint8Array[], kind: string): void {
    peer.lastSentAt = Date.now();
    if (peer.relay) this.#relay(peer.nodeId, frame instanceof Uint8Array ? frame : Buffer.concat(frame), kind);
    else if (peer.endpoint) this.#deliver(frame, peer.endpoint, kind);
  }

  #relay(dest: number, frame: Uint8Array, kind: string): void {
    this.#wire.relay(this.#nodeId, dest, frame, kind);
  }

  #deliver(bytes: Uint8Array | readonly Uint8Array[], to: UdpEndpoint, kind: string): void {
    if (!this.#closed) this.#wire.deliver(bytes, to, kind);
  }

  #drop(reason: DropReason, endpoint: UdpEndpoint, fromNode?: number): void {
    this.#wire.drop(reason, endpoint, fromNode);
  }
}
