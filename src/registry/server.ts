import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { silentLogger, type Logger } from '../log.js';
import type { JsonObject } from '../protocol/json.js';
import { SignatureVerifier } from './auth.js';
import { FRAME_DEADLINE_MS, RegistryConnection } from './connection.js';
import { markSignsBody, registeredNode, type RegistryState } from './context.js';
import { unmapIpv4 } from '../protocol/host-port.js';
import { u32Field } from './fields.js';
import { watchChallenge } from './challenges.js';
import { ACCEPTANCE_TTL_MS } from './handlers-polo.js';
import { HANDSHAKE_TTL_MS } from './handlers-trust.js';
import { Liveness } from './liveness.js';
import { KeyedRateLimiter } from '../rate-limit.js';
import { RequestCounter } from './request-counter.js';
import { RequestScheduler } from './request-scheduler.js';
import { checkReplicationOptions, startReplication, type Replication, type ReplicationOptions } from './replication.js';
import { openStore } from './open-store.js';
import { SharedView } from './shared-view.js';
import { computeStats, type RegistryStats } from './stats.js';
import type { RegistryStore } from './store.js';
import type { RegistryTlsMaterial } from './tls.js';

export interface RegistryServerOptions {
  /** Interface to bind; all interfaces when omitted or empty. */
  host?: string;
  /** 0 = ephemeral; `RegistryServer.port` tells the bound one. */
  port: number;
  /** SQLite file, `':memory:'`, or a `postgres://` URL. Ignored when `store` is given. */
  storePath: string;
  /** Another RegistryStore implementation (the server closes it on close). */
  store?: RegistryStore;
  log?: Logger;
  /** Enables `update_polo_score` / `set_polo_score` for requests carrying this token. */
  adminToken?: string;
  /** Clock in Unix ms (tests). */
  now?: () => number;
  /** Clock for the age of task evidence (an expiry needs an hour since acceptance); default `now`. */
  taskClock?: () => number;
  /** Serve TLS with this certificate (see `loadRegistryTls`); plain TCP when absent. */
  tls?: Pick<RegistryTlsMaterial, 'cert' | 'key' | 'fingerprint'>;
  /**
   * Refuse the reference's static signatures and unsigned registrations, so that only signed
   * request bodies are accepted: for networks without Go daemons (`-require-replay-proof`).
   */
  requireSignedBody?: boolean;
  /** Primary (a token standbys present) or read-only standby of a primary (PROTOCOL.md §5.10). */
  replication?: ReplicationOptions;
  /** Connection limits (defaults: 10,000 in all, 256 per source IP, 10 s to send a frame). */
  connectionLimits?: Partial<ConnectionLimits>;
}

export interface ConnectionLimits {
  readonly total: number;
  readonly perIp: number;
  /** A new connection's first frame, and any frame once begun, must arrive within this. */
  readonly frameDeadlineMs: number;
}

/** Per-IP limits: registrations of new keys (as the reference) and requests of any kind. */
const REGISTER_RATE = { perSecond: 10 / 60, burst: 10 };
const REQUEST_RATE = { perSecond: 200, burst: 400 };
const DEFAULT_LIMITS: ConnectionLimits = { total: 10_000, perIp: 256, frameDeadlineMs: FRAME_DEADLINE_MS };
const SWEEP_INTERVAL_MS = 60_000;
/** How often liveness times go to a shared store (one batch, not one write per heartbeat). */
const LIVENESS_FLUSH_MS = 1000;
/** A client that has not finished the TLS handshake by then is dropped. */
const TLS_HANDSHAKE_TIMEOUT_MS = 10_000;

const peerKey = (socket: Socket): string => `${socket.remoteAddress ?? ''}|${socket.remotePort ?? 0}`;

/** The registry (rendezvous) server of PROTOCOL.md §5 over TCP, or TLS (§5.1). */
export class RegistryServer {
  readonly port: number;
  readonly host: string;
  /** The pinned-certificate fingerprint when serving TLS. */
  readonly tlsFingerprint: string | undefined;
  readonly #server: Server;
  readonly #state: RegistryState;
  readonly #requestLimiter = new KeyedRateLimiter<string>(REQUEST_RATE.perSecond, REQUEST_RATE.burst);
  readonly #connections = new Set<RegistryConnection>();
  readonly #scheduler = new RequestScheduler();
  /** Accepted TCP sockets, including TLS ones still in the handshake; the connection limits count these. */
  readonly #sockets = new Set<Socket>();
  readonly #byIp = new Map<string, Set<Socket>>();
  /** Served connections by `<address>|<port>` of the peer (a TLS connection's socket is not the accepted one). */
  readonly #connectionByPeer = new Map<string, RegistryConnection>();
  readonly #limits: ConnectionLimits;
  readonly #watchers = new Map<number, RegistryConnection>();
  readonly #sweep: NodeJS.Timeout;
  readonly #startedAt = performance.now();
  readonly #replication: Replication;
  /** Reads for the synchronous callers (dashboard, beacon) when the store has no local view. */
  readonly #view: SharedView | undefined;
  readonly #livenessFlush: NodeJS.Timeout | undefined;
  #closing: Promise<void> | undefined;

  private constructor(
    server: Server,
    state: RegistryState,
    host: string,
    tlsFingerprint: string | undefined,
    replication: Replication,
    limits: ConnectionLimits,
    view: SharedView | undefined,
  ) {
    this.#server = server;
    this.#view = view;
    this.#limits = limits;
    this.#state = state;
    this.#replication = replication;
    this.host = host;
    this.tlsFingerprint = tlsFingerprint;
    this.port = (server.address() as AddressInfo).port;
    server.on('connection', (socket: Socket) => {
      if (this.#admit(socket) && tlsFingerprint === undefined) this.#serve(socket);
    });
    if (tlsFingerprint !== undefined) {
      server.on('secureConnection', (socket: TLSSocket) => this.#serve(socket));
      server.on('tlsClientError', (err: Error, socket: TLSSocket) => {
        state.log.debug({ ip: socket.remoteAddress, err: err.message }, 'TLS handshake failed');
        socket.destroy();
      });
    }
    server.on('error', (err) => state.log.error({ err }, 'registry listener error'));
    this.#sweep = setInterval(() => void this.#housekeeping(), SWEEP_INTERVAL_MS);
    this.#sweep.unref();
    const shared = state.store.shared;
    if (shared !== undefined) {
      shared.onHandshake((nodeId) => this.notify(nodeId));
      this.#livenessFlush = setInterval(() => void this.#flushLiveness(), LIVENESS_FLUSH_MS);
      this.#livenessFlush.unref();
    }
  }

  static async start(opts: RegistryServerOptions): Promise<RegistryServer> {
    const now = opts.now ?? Date.now;
    const log = opts.log ?? silentLogger();
    const replicationSettings = checkReplicationOptions(opts.replication);
    const store = opts.store ?? (await openStore(opts.storePath, log));
    const shared = store.shared;
    const liveness = new Liveness({ trackChanges: shared !== undefined });
    const started = now();
    // A restart must not make every node offline until its next heartbeat: fresh grace period.
    // (A shared store keeps the times every process recorded.)
    const registered = await store.listRegistered();
    if (shared === undefined) for (const node of registered) liveness.touch(node.id, started);

    let self: RegistryServer | undefined;
    let replication: Replication | undefined;
    const state: RegistryState = {
      store,
      log,
      liveness,
      verifier: new SignatureVerifier(started, shared),
      registerLimiter: new KeyedRateLimiter<string>(REGISTER_RATE.perSecond, REGISTER_RATE.burst),
      adminToken: opts.adminToken === '' ? undefined : opts.adminToken,
      requireSignedBody: opts.requireSignedBody === true,
      requests: new RequestCounter(),
      now,
      taskNow: opts.taskClock ?? now,
      notifyHandshake: (nodeId) => {
        if (shared === undefined) self?.notify(nodeId);
        else shared.announceHandshake(nodeId).catch((err: unknown) => log.warn({ err }, 'handshake wake-up not sent'));
      },
      standby: replicationSettings.primary !== undefined,
      stateChanged: () => replication?.changed(),
    };
    // Before listening: connections accepted from then on are served at once.
    const view = store.local === undefined ? await SharedView.start(store, now) : undefined;
    const server = opts.tls
      ? createTlsServer({
          cert: opts.tls.cert,
          key: opts.tls.key,
          minVersion: 'TLSv1.2',
          handshakeTimeout: TLS_HANDSHAKE_TIMEOUT_MS,
          noDelay: true,
        })
      : createServer({ noDelay: true });
    const host = opts.host ?? '';
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ port: opts.port, host: host === '' ? undefined : host }, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      await store.close();
      throw err;
    }
    replication = startReplication(state, replicationSettings);
    self = new RegistryServer(
      server,
      state,
      host,
      opts.tls?.fingerprint,
      replication,
      { ...DEFAULT_LIMITS, ...opts.connectionLimits },
      view,
    );
    const tls = opts.tls ? { tls_fingerprint: opts.tls.fingerprint } : { tls: false };
    log.info({ host, port: self.port, nodes: registered.length, ...tls }, 'registry listening');
    return self;
  }

  /** Wakes the node's push channel (our extension: handshakes arrive without waiting for a poll). */
  notify(nodeId: number): void {
    const conn = this.#watchers.get(nodeId);
    if (conn === undefined) return;
    conn.send({ type: 'handshake_notify', node_id: nodeId });
  }

  /** The dashboard's statistics (PROTOCOL.md §5.11); reads every registered node, so callers cache it. */
  stats(): RegistryStats {
    const { store, liveness, requests } = this.#state;
    const now = this.#state.now();
    const local = store.local;
    const nodes = local?.listRegistered() ?? this.#view?.nodes() ?? [];
    const byId = new Map(nodes.map((n) => [n.id, n]));
    return computeStats({
      nodes,
      trustPairs: local?.listTrustPairs() ?? this.#view?.trustPairs() ?? [],
      isOnline: (id) => liveness.isOnline(byId.get(id) ?? id, now),
      totalRequests: requests.total,
      uptimeMs: performance.now() - this.#startedAt,
    });
  }

  /** What a beacon in the same process may know of a registered node (for proofs and punches). */
  nodeFacts(id: number): { publicKey: string; isPublic: boolean } | undefined {
    const local = this.#state.store.local;
    const node = id === 0 ? undefined : local === undefined ? this.#view?.node(id) : local.getNode(id);
    return node?.registered === true ? { publicKey: node.publicKey, isPublic: node.isPublic } : undefined;
  }

  /** Whether two nodes trust each other (each claimed the other); undefined while a shared store is asked. */
  trustPair(a: number, b: number): boolean | undefined {
    const local = this.#state.store.local;
    if (local === undefined) return this.#view?.trustPair(a, b);
    return local.hasTrustClaim(a, b) && local.hasTrustClaim(b, a);
  }

  /** Nodes online now, from memory only (the dashboard samples it). */
  onlineCount(): number {
    const now = this.#state.now();
    // With a shared store, other processes' heartbeats count too (from the view, a second old at most).
    if (this.#view !== undefined) return this.#view.nodes().filter((n) => this.#state.liveness.isOnline(n, now)).length;
    return this.#state.liveness.onlineCount(now);
  }

  /** Handshake requests and answers relayed since the start. */
  handshakesRelayed(): number {
    return this.#state.requests.handshakesRelayed;
  }

  /** Handled requests by message type, sorted by type. */
  requestCounts(): Map<string, number> {
    return this.#state.requests.byType();
  }

  close(): Promise<void> {
    this.#closing ??= new Promise<void>((resolve) => {
      clearInterval(this.#sweep);
      clearInterval(this.#livenessFlush);
      this.#view?.close();
      this.#replication.close();
      this.#server.close(() => {
        void this.#flushLiveness()
          .then(() => this.#state.store.close())
          .catch((err: unknown) => this.#state.log.warn({ err }, 'registry store did not close cleanly'))
          .finally(() => {
            this.#state.log.info('registry closed');
            resolve();
          });
      });
      for (const conn of this.#connections) conn.close();
      for (const socket of this.#sockets) socket.destroy();
    });
    return this.#closing;
  }

  /**
   * Applies the connection limits to a new TCP socket; false when it was refused. When the server
   * is full, a source holding fewer connections than the heaviest one still gets in: one of the
   * heaviest source's connections makes room, so no source can hold the whole table.
   */
  #admit(socket: Socket): boolean {
    const ip = unmapIpv4(socket.remoteAddress ?? '');
    const mine = this.#byIp.get(ip) ?? new Set<Socket>();
    const full = this.#sockets.size >= this.#limits.total && !this.#evictFor(mine.size);
    if (this.#closing !== undefined || mine.size >= this.#limits.perIp || full) {
      this.#state.log.warn(
        { ip, count: mine.size, total: this.#sockets.size },
        'connection refused: too many connections',
      );
      socket.destroy();
      return false;
    }
    mine.add(socket);
    this.#byIp.set(ip, mine);
    this.#sockets.add(socket);
    socket.once('close', () => this.#forget(socket, ip));
    return true;
  }

  #forget(socket: Socket, ip: string): void {
    this.#sockets.delete(socket);
    const set = this.#byIp.get(ip);
    if (set?.delete(socket) && set.size === 0) this.#byIp.delete(ip);
  }

  /**
   * Closes one connection of the source holding the most, if it holds more than `count` + 1: an
   * idle one (between requests) first, the longest idle of those; push channels last.
   */
  #evictFor(count: number): boolean {
    let heaviestIp: string | undefined;
    let heaviest: Set<Socket> | undefined;
    for (const [ip, set] of this.#byIp) {
      if (heaviest === undefined || set.size > heaviest.size) {
        heaviest = set;
        heaviestIp = ip;
      }
    }
    if (heaviest === undefined || heaviestIp === undefined || heaviest.size <= count + 1) return false;
    let victim: Socket | undefined;
    let best = Infinity;
    for (const socket of heaviest) {
      const conn = this.#connectionByPeer.get(peerKey(socket));
      // Still in the TLS handshake or idle: cheapest to lose. Then anything but a push channel.
      const rank =
        conn === undefined ? 0 : conn.evictable ? 1 : conn.watching === undefined && !conn.replicating ? 2 : 3;
      const score = rank * 1e15 + (conn?.lastRequestAt ?? 0);
      if (score < best) {
        best = score;
        victim = socket;
      }
    }
    if (victim === undefined) return false;
    this.#state.log.info(
      { ip: heaviestIp, held: heaviest.size },
      'registry full: closing a connection of the heaviest source',
    );
    this.#forget(victim, heaviestIp);
    victim.destroy();
    return true;
  }

  /** Starts serving requests: a plain socket at once, a TLS one after its handshake. */
  #serve(socket: Socket): void {
    if (this.#closing !== undefined) {
      socket.destroy();
      return;
    }
    const conn = new RegistryConnection(
      socket,
      unmapIpv4(socket.remoteAddress ?? ''),
      {
        state: this.#state,
        requestLimiter: this.#requestLimiter,
        scheduler: this.#scheduler,
        watch: (c, msg) => this.#watch(c, msg),
        subscribe: (c, msg) => this.#replication.subscribe(c, msg),
        closed: (c) => this.#closed(c),
      },
      this.#limits.frameDeadlineMs,
    );
    this.#connectionByPeer.set(peerKey(socket), conn);
    this.#connections.add(conn);
  }

  #closed(conn: RegistryConnection): void {
    if (!this.#connections.delete(conn)) return;
    const key = `${conn.remoteAddress}|${conn.remotePort}`;
    if (this.#connectionByPeer.get(key) === conn) this.#connectionByPeer.delete(key);
    if (conn.watching !== undefined && this.#watchers.get(conn.watching) === conn) this.#watchers.delete(conn.watching);
  }

  /** Always a signed body (no Go client sends it); one channel per node, the newest wins. */
  async #watch(conn: RegistryConnection, msg: JsonObject): Promise<number> {
    const state = this.#state;
    const id = u32Field(msg, 'node_id');
    const node = await registeredNode(state, id);
    const form = await state.verifier.verify(node.publicKey, watchChallenge(id), msg, state.now(), {
      staticAllowed: false,
      nodeId: id,
    });
    if (form === 'signed-body') await markSignsBody(state, node);
    const previous = this.#watchers.get(id);
    this.#watchers.set(id, conn);
    if (previous !== undefined && previous !== conn) previous.close();
    return id;
  }

  /** Liveness times recorded here since the last flush, written to a shared store in one batch. */
  async #flushLiveness(): Promise<void> {
    const shared = this.#state.store.shared;
    const changes = this.#state.liveness.takeChanges();
    if (shared === undefined || changes === undefined) return;
    try {
      await shared.recordLiveness(changes.seen, changes.proven);
    } catch (err) {
      this.#state.log.warn({ err, nodes: changes.seen.size }, 'liveness times not written to the store');
    }
  }

  async #housekeeping(): Promise<void> {
    const state = this.#state;
    const now = state.now();
    try {
      await state.verifier.prune(now);
      state.registerLimiter.reap(now);
      this.#requestLimiter.reap(now);
      const expired = await state.store.pruneHandshakes(now - HANDSHAKE_TTL_MS);
      await state.store.pruneBeacons(now);
      await state.store.pruneTaskAcceptances(state.taskNow() - ACCEPTANCE_TTL_MS);
      if (expired > 0) state.log.info({ expired }, 'expired handshake entries removed');
    } catch (err) {
      state.log.error({ err }, 'registry housekeeping failed');
    }
  }
}
