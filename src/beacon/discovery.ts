import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { PilotError, toPilotError } from '../errors.js';
import type { Logger } from '../log.js';
import type { JsonObject } from '../protocol/json.js';
import { checkReply } from '../registry/client.js';
import { FrameSocket, parseRegistryAddress, type HostPort, type RegistryPin } from '../registry/frame-socket.js';
import { normalizeFingerprint } from '../registry/tls-pin.js';
import { canonicalIp, type Endpoint } from './endpoint.js';
import {
  advertisedEndpoint,
  derivedAdvertiseAddr,
  discoveredPeerSet,
  isWildcardHost,
  MAX_DISCOVERED_BEACONS,
  parseBeaconAddr,
  parseBeaconList,
  usablePeerIp,
  type ListedBeacon,
} from './peer-set.js';

/** Beacon peer discovery through the registry (PROTOCOL.md §4): the timer and the I/O. */

export interface DiscoverySettings {
  /** Registry `host:port`. */
  registry: string;
  /** The registry serves TLS: its certificate fingerprint, pinned (hex SHA-256 of the DER). */
  registryFingerprint?: string;
  /** `host:port` other beacons should send to; derived from the socket and the route when absent. */
  advertise?: string;
  /** Between rounds; the registry forgets a beacon 60 s after its last `beacon_register`. */
  intervalMs?: number;
  /** How soon after the previous round a Sync from an unknown beacon may trigger another. */
  minRefreshGapMs?: number;
  /** Bound on one round: connecting, both requests and resolving names. */
  roundTimeoutMs?: number;
  maxBeacons?: number;
}

export interface DiscoveryContext {
  readonly beaconId: number;
  /** The beacon socket's bound IP (`::` or `0.0.0.0` when on every interface) and port. */
  readonly boundHost: string;
  readonly port: number;
  /** The socket is IPv4 only, so IPv6 peers are unreachable. */
  readonly v4Only: boolean;
  readonly log: Logger;
  onPeers(peers: Endpoint[]): void;
}

const DEFAULTS = { intervalMs: 30_000, minRefreshGapMs: 2_000, roundTimeoutMs: 10_000 };

/** Throws `invalid_argument` for settings that cannot work. */
export function checkDiscoverySettings(settings: DiscoverySettings, beaconId: number): void {
  if (beaconId === 0) {
    throw new PilotError('invalid_argument', 'beacon peer discovery needs a non-zero beacon id', 'set -beacon-id');
  }
  parseRegistryAddress(settings.registry);
  if (settings.registryFingerprint !== undefined) normalizeFingerprint(settings.registryFingerprint);
  if (settings.advertise !== undefined) {
    const parsed = parseBeaconAddr(settings.advertise);
    if (!parsed || (isIP(parsed.host) !== 0 && !usablePeerIp(parsed.host, false))) {
      throw new PilotError(
        'invalid_argument',
        `invalid -advertise address ${JSON.stringify(settings.advertise)}`,
        'use the host:port other beacons can reach this one at, e.g. 203.0.113.7:9001',
      );
    }
  }
  for (const key of ['intervalMs', 'minRefreshGapMs', 'roundTimeoutMs', 'maxBeacons'] as const) {
    const value = settings[key];
    if (value !== undefined && !(Number.isFinite(value) && value > 0)) {
      throw new PilotError('invalid_argument', `discovery ${key} must be a positive number, got ${value}`);
    }
  }
}

/** Sends one request on a fresh registry connection and waits (until `deadline`) for its reply. */
function request(socket: FrameSocket, msg: JsonObject, deadline: number): Promise<JsonObject> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => {
        reject(new PilotError('timeout', `registry did not answer "${String(msg.type)}" in time`));
        socket.destroy();
      },
      Math.max(0, deadline - Date.now()),
    );
    socket.onFrame = (reply) => {
      clearTimeout(timer);
      socket.onFrame = () => {};
      try {
        resolve(checkReply(reply));
      } catch (err) {
        reject(toPilotError(err));
      }
    };
    socket.onClose = (reason) => {
      clearTimeout(timer);
      reject(reason);
    };
    try {
      socket.send(msg);
    } catch (err) {
      clearTimeout(timer);
      reject(toPilotError(err));
    }
  });
}

function beforeDeadline<T>(work: Promise<T>, deadline: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new PilotError('timeout', 'out of time')), Math.max(0, deadline - Date.now()));
    timer.unref();
  });
  return Promise.race([work, late]).finally(() => clearTimeout(timer));
}

const isLoopback = (ip: string): boolean => ip === '::1' || ip.startsWith('127.');

/**
 * Every `intervalMs` (first at start) registers this beacon with the registry, asks for the list
 * of beacons and hands the others to `onPeers`. One fresh connection per round, every step bounded
 * by the round timeout; while the registry is unreachable the last peers are kept and the outage
 * is logged once.
 */
export class BeaconDiscovery {
  private readonly target: HostPort;
  private readonly intervalMs: number;
  private readonly minRefreshGapMs: number;
  private readonly roundTimeoutMs: number;
  private timer: NodeJS.Timeout | undefined;
  private nextAt = Infinity;
  private running = false;
  private refreshWanted = false;
  private lastStart = -Infinity;
  private socket: FrameSocket | undefined;
  private readonly pin: RegistryPin | undefined;
  private closed = false;
  private outage = false;
  private warnedAboutAddr = false;

  constructor(
    private readonly settings: DiscoverySettings,
    private readonly ctx: DiscoveryContext,
  ) {
    checkDiscoverySettings(settings, ctx.beaconId);
    this.target = parseRegistryAddress(settings.registry);
    this.pin =
      settings.registryFingerprint === undefined
        ? undefined
        : { fingerprint: normalizeFingerprint(settings.registryFingerprint) };
    this.intervalMs = settings.intervalMs ?? DEFAULTS.intervalMs;
    this.minRefreshGapMs = settings.minRefreshGapMs ?? DEFAULTS.minRefreshGapMs;
    this.roundTimeoutMs = settings.roundTimeoutMs ?? DEFAULTS.roundTimeoutMs;
  }

  start(): void {
    this.scheduleAt(Date.now());
  }

  /** Runs a round soon (not sooner than `minRefreshGapMs` after the last one began). */
  refreshSoon(): void {
    if (this.running) this.refreshWanted = true;
    else this.scheduleAt(Math.max(Date.now(), this.lastStart + this.minRefreshGapMs));
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.socket?.destroy();
  }

  private scheduleAt(at: number): void {
    if (this.closed || at >= this.nextAt) return;
    clearTimeout(this.timer);
    this.nextAt = at;
    this.timer = setTimeout(
      () => {
        this.nextAt = Infinity;
        this.timer = undefined;
        void this.run();
      },
      Math.max(0, at - Date.now()),
    );
    this.timer.unref();
  }

  private async run(): Promise<void> {
    if (this.closed || this.running) return;
    this.running = true;
    this.refreshWanted = false;
    this.lastStart = Date.now();
    try {
      await this.round();
      this.succeeded();
    } catch (err) {
      this.failed(toPilotError(err));
    } finally {
      this.running = false;
    }
    const next = this.lastStart + (this.refreshWanted ? this.minRefreshGapMs : this.intervalMs);
    this.scheduleAt(Math.max(Date.now(), next));
  }

  private async round(): Promise<void> {
    const deadline = Date.now() + this.roundTimeoutMs;
    const socket = await FrameSocket.connect(this.target, this.roundTimeoutMs, this.pin);
    if (this.closed) {
      socket.destroy();
      return;
    }
    this.socket = socket;
    try {
      const addr = this.settings.advertise ?? this.derivedAddr(socket.localAddress);
      if (addr !== undefined)
        await request(socket, { type: 'beacon_register', beacon_id: this.ctx.beaconId, addr }, deadline);
      const reply = await request(socket, { type: 'beacon_list' }, deadline);
      const { beacons, skipped } = parseBeaconList(
        reply,
        this.ctx.beaconId,
        this.settings.maxBeacons ?? MAX_DISCOVERED_BEACONS,
      );
      for (const entry of skipped) this.ctx.log.debug({ entry }, 'beacon_list entry ignored');
      const resolved = await this.resolve(beacons, deadline);
      if (!this.closed) this.ctx.onPeers(discoveredPeerSet(resolved, advertisedEndpoint(addr), this.ctx.v4Only));
    } finally {
      socket.destroy();
      if (this.socket === socket) this.socket = undefined;
    }
  }

  private derivedAddr(localIp: string | undefined): string | undefined {
    const fromRoute = isWildcardHost(this.ctx.boundHost);
    const usable = localIp !== undefined && usablePeerIp(localIp, this.ctx.v4Only);
    const addr = fromRoute && !usable ? undefined : derivedAdvertiseAddr(this.ctx.boundHost, this.ctx.port, localIp);
    if (!this.warnedAboutAddr) {
      this.warnedAboutAddr = true;
      if (addr === undefined) {
        this.ctx.log.warn(
          { localIp },
          'cannot tell which address other beacons reach this one at; set -advertise (listing peers without registering)',
        );
      } else if (fromRoute && localIp !== undefined && isLoopback(canonicalIp(localIp))) {
        this.ctx.log.warn(
          { addr },
          'registering a loopback address, which only beacons on this host can reach; set -advertise',
        );
      }
    }
    return addr;
  }

  private async resolve(beacons: readonly ListedBeacon[], deadline: number): Promise<Endpoint[]> {
    const family = this.ctx.v4Only ? 4 : 0;
    const found = await Promise.all(
      beacons.map(async (b): Promise<Endpoint | undefined> => {
        if (isIP(b.host) !== 0) return { ip: canonicalIp(b.host), port: b.port };
        try {
          const { address } = await beforeDeadline(lookup(b.host, { family }), deadline);
          return { ip: canonicalIp(address), port: b.port };
        } catch (err) {
          this.ctx.log.debug(
            { beacon: b.id, host: b.host, err: toPilotError(err).message },
            'cannot resolve discovered beacon',
          );
          return undefined;
        }
      }),
    );
    return found.filter((ep): ep is Endpoint => ep !== undefined);
  }

  private succeeded(): void {
    if (!this.outage) return;
    this.outage = false;
    this.ctx.log.info({ registry: this.settings.registry }, 'beacon discovery: registry reachable again');
  }

  private failed(err: PilotError): void {
    if (this.closed) return;
    if (this.outage) {
      this.ctx.log.debug({ registry: this.settings.registry, err: err.message }, 'beacon discovery round failed');
      return;
    }
    this.outage = true;
    this.ctx.log.warn(
      { registry: this.settings.registry, err: err.message },
      'beacon discovery: registry unavailable; keeping the current peers and retrying each round',
    );
  }
}
