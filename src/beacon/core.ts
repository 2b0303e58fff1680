import { createHmac, randomBytes } from 'node:crypto';
import { ed25519Verify } from '../crypto/ed25519.js';
import { BEACON_COOKIE_SIZE, BeaconType, beaconProofText, decodeBeacon, encodeBeacon } from '../protocol/beacon.js';
import type { Endpoint } from './endpoint.js';
import { sameEndpoint } from './endpoint.js';
import { IpRateLimiter } from './ip-limiter.js';
import { NodeTable } from './node-table.js';
import { PeerDirectory } from './peer-directory.js';

/**
 * Beacon logic without sockets or timers (PROTOCOL.md §4): fed one datagram, its source and the
 * current time, it returns the datagrams to send. Departures from the reference, all invisible to
 * a conforming daemon: entries expire, tables are bounded, a Relay is accepted only from the
 * endpoint its sender last registered from, Sync only from peer beacons, a discovered peer gets
 * this beacon's node list only while it gossips back, and every source IP is rate limited.
 *
 * With a directory of registered nodes (their keys, visibility and trust), a node can prove its id
 * (ProofRequest → ProofChallenge → Proof, a pilot-ts extension): the challenge's cookie is bound to
 * the source endpoint, the proof is an Ed25519 signature over it. A proven id cannot be claimed by a
 * plain Discover from elsewhere; a punch reveals a target's endpoint only to a requester entitled to
 * it as at the registry (the target is public, or the two are a trust pair and the requester proved
 * its id); relays are limited per sender node, and with `requireProof` accepted only from proven
 * senders. Go daemons cannot prove: their ids stay claimable, as the reference's all are.
 */

/** What the beacon may know of a registered node (from the registry). */
export interface NodeFacts {
  readonly publicKey: Uint8Array;
  readonly isPublic: boolean;
}

export interface BeaconDirectory {
  /** Facts of a node if known now; may start fetching them, so that a retry finds them. */
  facts(nodeId: number): NodeFacts | undefined;
  /** Whether the two nodes trust each other; undefined when this directory cannot tell. */
  trustPair?(a: number, b: number): boolean | undefined;
}

export type DropReason =
  | 'malformed'
  | 'unexpected_type'
  | 'rate_limited'
  | 'ip_limit'
  | 'relay_spoofed'
  | 'relay_unknown_dest'
  | 'relay_queue_full'
  | 'sync_not_peer'
  | 'send_failed'
  | 'id_claimed'
  | 'proof_unsupported'
  | 'proof_invalid'
  | 'proof_key_unknown'
  | 'punch_refused'
  | 'relay_unproven';

export const DROP_REASONS: readonly DropReason[] = [
  'malformed',
  'unexpected_type',
  'rate_limited',
  'ip_limit',
  'relay_spoofed',
  'relay_unknown_dest',
  'relay_queue_full',
  'sync_not_peer',
  'send_failed',
  'id_claimed',
  'proof_unsupported',
  'proof_invalid',
  'proof_key_unknown',
  'punch_refused',
  'relay_unproven',
];

export interface Outgoing {
  readonly to: Endpoint;
  readonly bytes: Uint8Array;
  /** Relay traffic goes through the bounded relay queue. */
  readonly relay: boolean;
}

export interface BeaconLimits {
  /** Discover / PunchRequest / anything else, per source IP. */
  readonly controlPerSecond: number;
  readonly controlBurst: number;
  /** Relay datagrams per source IP (peer beacons are exempt). */
  readonly relayPerSecond: number;
  readonly relayBurst: number;
  /** Relay datagrams per sender node id (whatever its source). */
  readonly relayPerNodePerSecond: number;
  readonly relayPerNodeBurst: number;
  readonly maxTrackedIps: number;
}

export interface BeaconCoreOptions {
  readonly beaconId: number;
  readonly maxNodes: number;
  readonly ttlMs: number;
  readonly maxNodesPerIp: number;
  readonly peerStaleMs: number;
  readonly limits: BeaconLimits;
  /** Keys and visibility of registered nodes: enables proofs and the punch rules. */
  readonly directory?: BeaconDirectory;
  /** Relays and punches only for proven nodes (networks without Go daemons). */
  readonly requireProof?: boolean;
  /** Key of the challenge cookies; random per process by default. */
  readonly cookieSecret?: Uint8Array;
}

/** Cookies are valid in the minute they were made and the next. */
const COOKIE_EPOCH_MS = 60_000;

export const DEFAULT_LIMITS: BeaconLimits = {
  controlPerSecond: 50,
  controlBurst: 100,
  relayPerSecond: 5000,
  relayBurst: 10_000,
  relayPerNodePerSecond: 2000,
  relayPerNodeBurst: 4000,
  maxTrackedIps: 65_536,
};

/** Largest node list that still fits one UDP datagram (65507 bytes of IPv4 payload). */
export const SYNC_MAX_IDS = Math.floor((65_507 - 7) / 4);

/** A tunnel frame is at least its 4-byte magic; daemons discard anything shorter. */
const MIN_RELAY_FRAME = 4;

export class BeaconCore {
  readonly nodes: NodeTable;
  readonly peers: PeerDirectory;
  readonly drops: Record<DropReason, number>;
  relayed = 0;
  private readonly control: IpRateLimiter;
  private readonly relayLimit: IpRateLimiter;
  private readonly relayPerNode: IpRateLimiter;
  private readonly cookieSecret: Uint8Array;

  constructor(private readonly opts: BeaconCoreOptions) {
    this.nodes = new NodeTable({ maxNodes: opts.maxNodes, ttlMs: opts.ttlMs, maxNodesPerIp: opts.maxNodesPerIp });
    this.peers = new PeerDirectory(opts.peerStaleMs);
    const l = opts.limits;
    this.control = new IpRateLimiter(l.controlPerSecond, l.controlBurst, l.maxTrackedIps);
    this.relayLimit = new IpRateLimiter(l.relayPerSecond, l.relayBurst, l.maxTrackedIps);
    this.relayPerNode = new IpRateLimiter(l.relayPerNodePerSecond, l.relayPerNodeBurst, l.maxTrackedIps);
    this.cookieSecret = opts.cookieSecret ?? randomBytes(32);
    this.drops = Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<DropReason, number>;
  }

  drop(reason: DropReason): [] {
    this.drops[reason]++;
    return [];
  }

  handle(bytes: Uint8Array, from: Endpoint, now: number): Outgoing[] {
    const fromPeer = this.peers.isPeer(from);
    if (!fromPeer) {
      const limiter = bytes[0] === BeaconType.Relay ? this.relayLimit : this.control;
      if (!limiter.take(from.ip, now)) return this.drop('rate_limited');
    }
    const decoded = decodeBeacon(bytes);
    if (!decoded.ok) return this.drop('malformed');
    const msg = decoded.value;
    switch (msg.type) {
      case 'Discover':
        return this.onDiscover(msg.nodeId, from, now);
      case 'PunchRequest':
        return this.onPunch(msg.requester, msg.target, from, now);
      case 'Relay':
        return this.onRelay(msg.sender, msg.dest, msg.frame, bytes, from, fromPeer, now);
      case 'Sync':
        return this.onSync(msg.nodeIds, from, now);
      case 'ProofRequest':
        return this.onProofRequest(msg.nodeId, from, now);
      case 'Proof':
        return this.onProof(msg.nodeId, msg.cookie, msg.signature, from, now);
      default:
        return this.drop('unexpected_type');
    }
  }

  /** One gossip round: the Sync each peer beacon gets (see `PeerDirectory.sharesWith`). */
  gossip(now: number, to: readonly Endpoint[] = this.peers.endpoints()): Outgoing[] {
    let full: Uint8Array | undefined;
    let empty: Uint8Array | undefined;
    return to.map((ep) => {
      const bytes = this.peers.sharesWith(ep, now)
        ? (full ??= encodeBeacon({
            type: 'Sync',
            beaconId: this.opts.beaconId,
            nodeIds: this.nodes.recentIds(now, SYNC_MAX_IDS),
          }))
        : (empty ??= encodeBeacon({ type: 'Sync', beaconId: this.opts.beaconId, nodeIds: [] }));
      return { to: ep, bytes, relay: false };
    });
  }

  /** Periodic housekeeping: expired nodes and idle rate-limit buckets. */
  sweep(now: number): void {
    this.nodes.sweep(now);
    this.control.reap(now);
    this.relayLimit.reap(now);
    this.relayPerNode.reap(now);
  }

  /**
   * A peer heard from for the first time (or again after its list went stale) gets this beacon's
   * list at once instead of at the next round, so two beacons that just found each other agree
   * within a round trip. Each side answers at most once per resumption, so this cannot loop.
   */
  private onSync(nodeIds: readonly number[], from: Endpoint, now: number): Outgoing[] {
    const outcome = this.peers.applySync(from, nodeIds, now);
    if (outcome === 'not_peer') return this.drop('sync_not_peer');
    return outcome === 'resumed' ? this.gossip(now, [from]) : [];
  }

  private onDiscover(nodeId: number, from: Endpoint, now: number): Outgoing[] {
    // Node 0 is the daemon's STUN probe from a temporary socket: answer, never record.
    const recorded = nodeId === 0 || this.opts.requireProof === true ? 'ok' : this.nodes.record(nodeId, from, now);
    if (recorded !== 'ok') this.drops[recorded]++;
    return [{ to: from, bytes: encodeBeacon({ type: 'DiscoverReply', ip: from.ip, port: from.port }), relay: false }];
  }

  /** 16 bytes bound to the node, its source endpoint and the minute. */
  private cookie(nodeId: number, from: Endpoint, epoch: number): Buffer {
    return createHmac('sha256', this.cookieSecret)
      .update(`${epoch}|${nodeId}|${from.ip}|${from.port}`)
      .digest()
      .subarray(0, BEACON_COOKIE_SIZE);
  }

  private onProofRequest(nodeId: number, from: Endpoint, now: number): Outgoing[] {
    const directory = this.opts.directory;
    if (directory === undefined || nodeId === 0) return this.drop('proof_unsupported');
    directory.facts(nodeId); // fetch the key now, so that it is there for the proof
    const cookie = this.cookie(nodeId, from, Math.floor(now / COOKIE_EPOCH_MS));
    return [{ to: from, bytes: encodeBeacon({ type: 'ProofChallenge', nodeId, cookie }), relay: false }];
  }

  private onProof(nodeId: number, cookie: Uint8Array, signature: Uint8Array, from: Endpoint, now: number): Outgoing[] {
    const directory = this.opts.directory;
    if (directory === undefined || nodeId === 0) return this.drop('proof_unsupported');
    const epoch = Math.floor(now / COOKIE_EPOCH_MS);
    const fresh = [epoch, epoch - 1].some((e) => this.cookie(nodeId, from, e).equals(cookie));
    if (!fresh) return this.drop('proof_invalid');
    const facts = directory.facts(nodeId);
    if (facts === undefined) return this.drop('proof_key_unknown');
    if (!ed25519Verify(facts.publicKey, beaconProofText(nodeId, cookie), signature)) return this.drop('proof_invalid');
    const recorded = this.nodes.record(nodeId, from, now, true);
    if (recorded !== 'ok') return this.drop(recorded);
    return [{ to: from, bytes: encodeBeacon({ type: 'ProofOk', nodeId }), relay: false }];
  }

  /**
   * The requester must be recorded at the source of the request; the target's endpoint goes only
   * to a requester entitled to it as at the registry's `resolve`: the target is public, or the two
   * trust each other and the requester proved its id. Without a directory (no registry to ask),
   * any registered requester.
   */
  private onPunch(requester: number, target: number, from: Endpoint, now: number): Outgoing[] {
    if (requester === 0) return this.drop('malformed');
    // The reference records the requester here; we take only a node registered from this endpoint
    // (daemons, Go ones too, send Discover from their tunnel socket first).
    const self = this.nodes.entry(requester, now);
    if (!self || !sameEndpoint(self.ep, from)) return this.drop('punch_refused');
    const targetEntry = target === requester ? undefined : this.nodes.entry(target, now);
    if (!targetEntry) return [];
    if (!this.mayPunch(requester, self.proven, target)) return this.drop('punch_refused');
    const targetEp = targetEntry.ep;
    return [
      { to: from, bytes: encodeBeacon({ type: 'PunchCommand', ip: targetEp.ip, port: targetEp.port }), relay: false },
      { to: targetEp, bytes: encodeBeacon({ type: 'PunchCommand', ip: from.ip, port: from.port }), relay: false },
    ];
  }

  private mayPunch(requester: number, proven: boolean, target: number): boolean {
    if (this.opts.requireProof === true && !proven) return false;
    const directory = this.opts.directory;
    if (directory === undefined) return true;
    if (directory.facts(target)?.isPublic === true) return true;
    return proven && directory.trustPair?.(requester, target) === true;
  }

  private onRelay(
    sender: number,
    dest: number,
    frame: Uint8Array,
    original: Uint8Array,
    from: Endpoint,
    fromPeer: boolean,
    now: number,
  ): Outgoing[] {
    if (frame.length < MIN_RELAY_FRAME) return this.drop('malformed');
    if (!fromPeer) {
      const registered = this.nodes.entry(sender, now);
      if (!registered || !sameEndpoint(registered.ep, from)) return this.drop('relay_spoofed');
      if (this.opts.requireProof === true && !registered.proven) return this.drop('relay_unproven');
      if (!this.relayPerNode.take(String(sender), now)) return this.drop('rate_limited');
    }
    const local = this.nodes.get(dest, now);
    if (local) {
      this.relayed++;
      return [{ to: local, bytes: encodeBeacon({ type: 'RelayDeliver', sender, frame }), relay: true }];
    }
    // A relay that already crossed one beacon is never forwarded again, so peers cannot loop it.
    const owner = fromPeer ? undefined : this.peers.owner(dest, now);
    if (!owner) return this.drop('relay_unknown_dest');
    this.relayed++;
    return [{ to: owner, bytes: original, relay: true }];
  }
}
