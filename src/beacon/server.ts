import { createSocket, type RemoteInfo, type Socket, type SocketType } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { PilotError, toPilotError } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import { BeaconType } from '../protocol/beacon.js';
import {
  decodeNatProbe,
  encodeNatProbeReply,
  NAT_PROBE,
  type NatProbeEndpoint,
  type NatProbeSource,
} from '../protocol/nat-probe.js';
import { RegistryClient } from '../registry/client.js';
import {
  BeaconCore,
  DEFAULT_LIMITS,
  type BeaconDirectory,
  type BeaconLimits,
  type DropReason,
  type Outgoing,
} from './core.js';
import { RegistryDirectory } from './registry-directory.js';
import { BeaconDiscovery, checkDiscoverySettings, type DiscoverySettings } from './discovery.js';
import { canonicalIp, endpointKey, parseHostPort, type Endpoint } from './endpoint.js';
import { IpRateLimiter } from './ip-limiter.js';

export interface BeaconServerOptions {
  /** Interface to bind; empty or absent = every interface (dual-stack when IPv6 is available). */
  host?: string;
  port: number;
  /** Announced in Sync messages; 0 by default, like the reference. */
  beaconId?: number;
  /** Peer beacons as `host:port`; only peers may send Sync or have relays forwarded to them. */
  peers?: string[];
  /** Also take as peers the other beacons registered with a registry (needs a non-zero `beaconId`). */
  discovery?: DiscoverySettings;
  log?: Logger;
  /** Clock in ms (injectable for tests). */
  now?: () => number;
  maxNodes?: number;
  /** How long a node stays known after its last Discover or PunchRequest. */
  nodeTtlMs?: number;
  maxNodesPerIp?: number;
  syncIntervalMs?: number;
  /** Relay datagrams handed to the socket and not yet sent; more are dropped. */
  relayQueueLimit?: number;
  limits?: Partial<BeaconLimits>;
  /**
   * Keys, visibility and trust of registered nodes, for proofs of node ids and the punch rules.
   * Without it, but with `registry`, the registry's public `lookup` is used.
   */
  directory?: BeaconDirectory;
  /** Registry `host:port` (and TLS pin) to look nodes up in when no directory is given. */
  registry?: { address: string; fingerprint?: string };
  /** Relays and punches only for nodes that proved their id (no Go daemons on the network). */
  requireProof?: boolean;
  /**
   * NAT probes (pilot-ts extension): answered from the main socket and from a second port; with
   * `otherAddress` (another IP of this host) also from there, which tells full from restricted
   * cones. `false` turns them off.
   */
  natProbe?: false | { otherAddress?: string };
}

export interface BeaconStats {
  readonly nodes: number;
  /** Peer beacons, configured and discovered. */
  readonly peers: number;
  readonly relayed: number;
  readonly drops: Readonly<Record<DropReason, number>>;
}

const DEFAULTS = {
  maxNodes: 100_000,
  nodeTtlMs: 5 * 60_000,
  maxNodesPerIp: 4096,
  syncIntervalMs: 10_000,
  relayQueueLimit: 4096,
  sweepIntervalMs: 30_000,
};

async function openSocket(host: string, port: number): Promise<Socket> {
  const bind = (type: SocketType, address: string): Promise<Socket> =>
    new Promise((resolve, reject) => {
      const socket = createSocket({ type, reuseAddr: false });
      const onError = (err: Error): void => {
        socket.close();
        reject(err);
      };
      socket.once('error', onError);
      socket.bind({ port, address, exclusive: true }, () => {
        socket.off('error', onError);
        resolve(socket);
      });
    });
  if (host === '') {
    try {
      return await bind('udp6', '::');
    } catch {
      return bind('udp4', '0.0.0.0');
    }
  }
  const resolved = isIP(host) ? { address: host, family: isIP(host) } : await lookup(host);
  return bind(resolved.family === 6 ? 'udp6' : 'udp4', resolved.address);
}

/** UDP beacon (PROTOCOL.md §4): endpoint discovery, punch coordination, relay, gossip. */
export class BeaconServer {
  private readonly core: BeaconCore;
  private readonly timers: NodeJS.Timeout[] = [];
  private relayInFlight = 0;
  private closed = false;
  private configuredPeers: Endpoint[] = [];
  private discoveredPeers: Endpoint[] = [];
  private discovery: BeaconDiscovery | undefined;
  private readonly registryClient: RegistryClient | undefined;
  /** The NAT probe sockets: another port (source 1) and another address (source 2). */
  private readonly probeSockets: (Socket | undefined)[] = [undefined, undefined];
  private readonly probeLimit = new IpRateLimiter(10, 20, 65_536);

  private constructor(
    private readonly socket: Socket,
    private readonly opts: BeaconServerOptions,
    private readonly log: Logger,
    private readonly now: () => number,
  ) {
    let directory = opts.directory;
    if (directory === undefined && opts.registry !== undefined) {
      const client = new RegistryClient({
        address: opts.registry.address,
        log,
        timeoutMs: 5000,
        ...(opts.registry.fingerprint ? { tls: { fingerprint: opts.registry.fingerprint } } : {}),
      });
      this.registryClient = client;
      directory = new RegistryDirectory((node) => client.lookup(node), log, now);
    }
    this.core = new BeaconCore({
      ...(directory !== undefined ? { directory } : {}),
      ...(opts.requireProof === true ? { requireProof: true } : {}),
      beaconId: opts.beaconId ?? 0,
      maxNodes: opts.maxNodes ?? DEFAULTS.maxNodes,
      ttlMs: opts.nodeTtlMs ?? DEFAULTS.nodeTtlMs,
      maxNodesPerIp: opts.maxNodesPerIp ?? DEFAULTS.maxNodesPerIp,
      peerStaleMs: 3 * (opts.syncIntervalMs ?? DEFAULTS.syncIntervalMs),
      limits: { ...DEFAULT_LIMITS, ...opts.limits },
    });
    socket.on('message', (msg, rinfo) => this.onMessage(msg, rinfo));
    socket.on('error', (err) => this.log.warn({ err }, 'beacon socket error'));
  }

  static async start(opts: BeaconServerOptions): Promise<BeaconServer> {
    if (
      opts.beaconId !== undefined &&
      !(Number.isInteger(opts.beaconId) && opts.beaconId >= 0 && opts.beaconId <= 0xffffffff)
    ) {
      throw new PilotError('invalid_argument', `beacon id must be a 32-bit unsigned integer, got ${opts.beaconId}`);
    }
    const peerSpecs = (opts.peers ?? []).map((p) => p.trim()).filter((p) => p !== '');
    for (const p of peerSpecs) parseHostPort(p);
    if (opts.discovery) checkDiscoverySettings(opts.discovery, opts.beaconId ?? 0);
    if (opts.requireProof === true && opts.directory === undefined && opts.registry === undefined) {
      throw new PilotError('invalid_argument', 'a beacon that requires proofs needs a registry to verify them with');
    }
    let socket: Socket;
    try {
      socket = await openSocket(opts.host ?? '', opts.port);
    } catch (err) {
      throw new PilotError(
        'unavailable',
        `beacon cannot listen on ${opts.host ?? ''}:${opts.port}: ${toPilotError(err).message}`,
        undefined,
        { cause: err },
      );
    }
    const server = new BeaconServer(
      socket,
      { ...opts, peers: peerSpecs },
      opts.log ?? silentLogger(),
      opts.now ?? Date.now,
    );
    try {
      await server.openProbeSockets();
    } catch (err) {
      await server.close();
      throw new PilotError(
        'unavailable',
        `beacon cannot open its NAT probe sockets: ${toPilotError(err).message}`,
        undefined,
        { cause: err },
      );
    }
    await server.resolvePeers();
    server.startTimers();
    server.startDiscovery();
    server.log.info(
      { port: server.port, peers: peerSpecs.length, registry: opts.discovery?.registry },
      'beacon listening',
    );
    return server;
  }

  get port(): number {
    return this.socket.address().port;
  }

  /** The bound address (`::` or `0.0.0.0` when listening on every interface). */
  get host(): string {
    return this.socket.address().address;
  }

  get listening(): boolean {
    return !this.closed;
  }

  stats(): BeaconStats {
    return {
      nodes: this.core.nodes.size,
      peers: this.core.peers.endpoints().length,
      relayed: this.core.relayed,
      drops: { ...this.core.drops },
    };
  }

  /** Peer beacons as `host:port`, configured and discovered; for diagnostics. */
  peerAddresses(): string[] {
    return this.core.peers.endpoints().map(endpointKey);
  }

  /** Node IDs currently recorded (most recently seen last); for diagnostics. */
  nodeIds(): number[] {
    return this.core.nodes.recentIds(this.now(), Number.MAX_SAFE_INTEGER);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.discovery?.close();
    this.registryClient?.close();
    for (const t of this.timers) clearInterval(t);
    for (const s of this.probeSockets) if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
    await new Promise<void>((resolve) => this.socket.close(() => resolve()));
  }

  private startTimers(): void {
    const every = (ms: number, fn: () => void): void => {
      const t = setInterval(fn, ms);
      t.unref();
      this.timers.push(t);
    };
    every(DEFAULTS.sweepIntervalMs, () => this.core.sweep(this.now()));
    if (this.opts.peers?.length || this.opts.discovery) {
      every(this.opts.syncIntervalMs ?? DEFAULTS.syncIntervalMs, () => {
        void this.resolvePeers().then(() => this.gossip());
      });
    }
  }

  private startDiscovery(): void {
    if (!this.opts.discovery) return;
    const { address, family } = this.socket.address();
    this.discovery = new BeaconDiscovery(this.opts.discovery, {
      beaconId: this.opts.beaconId ?? 0,
      boundHost: address,
      port: this.port,
      v4Only: family === 'IPv4',
      log: this.log,
      onPeers: (peers) => this.setDiscoveredPeers(peers),
    });
    this.discovery.start();
  }

  /** New peers get a Sync at once rather than at the next gossip round. */
  private setDiscoveredPeers(peers: Endpoint[]): void {
    if (this.closed) return;
    const before = new Set(this.discoveredPeers.map(endpointKey));
    const removed = before.size - peers.filter((ep) => before.has(endpointKey(ep))).length;
    this.discoveredPeers = peers;
    const added = this.core.peers.setPeers(this.configuredPeers, this.discoveredPeers);
    if (added.length > 0 || removed > 0) {
      this.log.info(
        { added: added.map(endpointKey), removed, peers: this.core.peers.endpoints().length },
        'peer beacons changed',
      );
    }
    for (const o of this.core.gossip(this.now(), added)) this.send(o);
  }

  /** Peers are named by host:port; names are re-resolved on every gossip round. */
  private async resolvePeers(): Promise<void> {
    const specs = this.opts.peers ?? [];
    if (specs.length === 0) return;
    const v4Only = this.socket.address().family === 'IPv4';
    const resolved = await Promise.all(
      specs.map(async (spec): Promise<Endpoint | undefined> => {
        const { host, port } = parseHostPort(spec);
        try {
          const ip = isIP(host) ? host : (await lookup(host || 'localhost', v4Only ? { family: 4 } : {})).address;
          return { ip: canonicalIp(ip), port };
        } catch (err) {
          this.log.warn({ peer: spec, err: toPilotError(err).message }, 'cannot resolve peer beacon');
          return undefined;
        }
      }),
    );
    if (this.closed) return;
    this.configuredPeers = resolved.filter((ep): ep is Endpoint => ep !== undefined);
    this.core.peers.setPeers(this.configuredPeers, this.discoveredPeers);
  }

  private gossip(): void {
    if (this.closed) return;
    for (const o of this.core.gossip(this.now())) this.send(o);
  }

  private async openProbeSockets(): Promise<void> {
    const cfg = this.opts.natProbe;
    if (cfg === false) return;
    const main = this.socket.address();
    const other = await openSocket(main.address === '::' || main.address === '0.0.0.0' ? '' : main.address, 0);
    this.probeSockets[0] = other;
    if (cfg?.otherAddress) this.probeSockets[1] = await openSocket(cfg.otherAddress, 0);
    this.probeSockets.forEach((s, i) => {
      s?.on('message', (msg, rinfo) => this.onProbeSocketMessage((i + 1) as NatProbeSource, msg, rinfo));
      s?.on('error', (err) => this.log.warn({ err }, 'beacon probe socket error'));
    });
  }

  private probeEndpoints(): { otherPort: NatProbeEndpoint | undefined; otherAddress: NatProbeEndpoint | undefined } {
    const ep = (s: Socket | undefined): NatProbeEndpoint | undefined => {
      if (!s) return undefined;
      const a = s.address();
      return { ip: canonicalIp(a.address), port: a.port };
    };
    return { otherPort: ep(this.probeSockets[0]), otherAddress: ep(this.probeSockets[1]) };
  }

  /** A NAT probe: answered (rate limited per source IP) from `sources`, each reply naming its socket. */
  private answerProbe(msg: Buffer, from: Endpoint, sources: readonly NatProbeSource[]): void {
    const token = decodeNatProbe(msg);
    if (!token.ok) return void this.core.drop('malformed');
    if (!this.probeLimit.take(from.ip, this.now())) return void this.core.drop('rate_limited');
    for (const source of sources) {
      const socket = source === 0 ? this.socket : this.probeSockets[source - 1];
      if (!socket) continue;
      const bytes = encodeNatProbeReply({ token: token.value, source, observed: from, ...this.probeEndpoints() });
      const isV4 = isIP(from.ip) === 4;
      const family = socket.address().family;
      if (family === 'IPv4' && !isV4) continue;
      try {
        socket.send(bytes, from.port, family === 'IPv6' && isV4 ? `::ffff:${from.ip}` : from.ip);
      } catch {
        this.core.drop('send_failed');
      }
    }
  }

  private onProbeSocketMessage(source: NatProbeSource, msg: Buffer, rinfo: RemoteInfo): void {
    if (this.closed || msg[0] !== NAT_PROBE) return;
    this.answerProbe(msg, { ip: canonicalIp(rinfo.address), port: rinfo.port }, [source]);
  }

  private onMessage(msg: Buffer, rinfo: RemoteInfo): void {
    if (this.closed) return;
    const from = { ip: canonicalIp(rinfo.address), port: rinfo.port };
    if (msg[0] === NAT_PROBE) return this.answerProbe(msg, from, [0, 1, 2]);
    // A beacon that lists us may have registered after our last look at the registry.
    if (this.discovery && msg[0] === BeaconType.Sync && !this.core.peers.isPeer(from)) this.discovery.refreshSoon();
    let out: Outgoing[];
    try {
      out = this.core.handle(msg, from, this.now());
    } catch (err) {
      this.core.drop('malformed');
      this.log.debug({ err: toPilotError(err).message, from: rinfo.address }, 'beacon datagram rejected');
      return;
    }
    for (const o of out) this.send(o);
  }

  private send(o: Outgoing): void {
    if (this.closed) return;
    const isV4 = isIP(o.to.ip) === 4;
    const family = this.socket.address().family;
    if (family === 'IPv4' && !isV4) {
      this.core.drop('send_failed');
      return;
    }
    const address = family === 'IPv6' && isV4 ? `::ffff:${o.to.ip}` : o.to.ip;
    if (o.relay) {
      if (this.relayInFlight >= (this.opts.relayQueueLimit ?? DEFAULTS.relayQueueLimit)) {
        this.core.drop('relay_queue_full');
        return;
      }
      this.relayInFlight++;
    }
    try {
      this.socket.send(o.bytes, o.to.port, address, (err) => {
        if (o.relay) this.relayInFlight--;
        if (err) this.core.drop('send_failed');
      });
    } catch {
      if (o.relay) this.relayInFlight--;
      this.core.drop('send_failed');
    }
  }
}
