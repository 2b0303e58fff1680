import { BeaconType, decodeBeacon, encodeBeacon } from '../protocol/beacon.js';
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
 */

export type DropReason =
  | 'malformed'
  | 'unexpected_type'
  | 'rate_limited'
  | 'ip_limit'
  | 'relay_spoofed'
  | 'relay_unknown_dest'
  | 'relay_queue_full'
  | 'sync_not_peer'
  | 'send_failed';

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
  readonly maxTrackedIps: number;
}

export interface BeaconCoreOptions {
  readonly beaconId: number;
  readonly maxNodes: number;
  readonly ttlMs: number;
  readonly maxNodesPerIp: number;
  readonly peerStaleMs: number;
  readonly limits: BeaconLimits;
}

export const DEFAULT_LIMITS: BeaconLimits = {
  controlPerSecond: 50,
  controlBurst: 100,
  relayPerSecond: 5000,
  relayBurst: 10_000,
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

  constructor(private readonly opts: BeaconCoreOptions) {
    this.nodes = new NodeTable({ maxNodes: opts.maxNodes, ttlMs: opts.ttlMs, maxNodesPerIp: opts.maxNodesPerIp });
    this.peers = new PeerDirectory(opts.peerStaleMs);
    const l = opts.limits;
    this.control = new IpRateLimiter(l.controlPerSecond, l.controlBurst, l.maxTrackedIps);
    this.relayLimit = new IpRateLimiter(l.relayPerSecond, l.relayBurst, l.maxTrackedIps);
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
        ? (full ??= encodeBeacon({ type: 'Sync', beaconId: this.opts.beaconId, nodeIds: this.nodes.recentIds(now, SYNC_MAX_IDS) }))
        : (empty ??= encodeBeacon({ type: 'Sync', beaconId: this.opts.beaconId, nodeIds: [] }));
      return { to: ep, bytes, relay: false };
    });
  }

  /** Periodic housekeeping: expired nodes and idle rate-limit buckets. */
  sweep(now: number): void {
    this.nodes.sweep(now);
    this.control.reap(now);
    this.relayLimit.reap(now);
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
    if (nodeId !== 0 && this.nodes.record(nodeId, from, now) === 'ip_limit') this.drops.ip_limit++;
    return [{ to: from, bytes: encodeBeacon({ type: 'DiscoverReply', ip: from.ip, port: from.port }), relay: false }];
  }

  private onPunch(requester: number, target: number, from: Endpoint, now: number): Outgoing[] {
    if (requester === 0) return this.drop('malformed');
    if (this.nodes.record(requester, from, now) === 'ip_limit') return this.drop('ip_limit');
    const targetEp = target === requester ? undefined : this.nodes.get(target, now);
    if (!targetEp) return [];
    return [
      { to: from, bytes: encodeBeacon({ type: 'PunchCommand', ip: targetEp.ip, port: targetEp.port }), relay: false },
      { to: targetEp, bytes: encodeBeacon({ type: 'PunchCommand', ip: from.ip, port: from.port }), relay: false },
    ];
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
      const registered = this.nodes.get(sender, now);
      if (!registered || !sameEndpoint(registered, from)) return this.drop('relay_spoofed');
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
