import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { silentLogger, type Logger } from '../log.js';
import type { JsonObject } from '../protocol/json.js';
import { SignatureVerifier } from './auth.js';
import { FRAME_DEADLINE_MS, RegistryConnection } from './connection.js';
import { markSignsBody, registeredNode, trustPairExists, type RegistryState } from './context.js';
import { normalizeIp } from './endpoint.js';
import { u32Field } from './fields.js';
import { watchChallenge } from './challenges.js';
import { ACCEPTANCE_TTL_MS } from './handlers-polo.js';
import { HANDSHAKE_TTL_MS } from './handlers-trust.js';
import { Liveness } from './liveness.js';
import { KeyedRateLimiter } from '../rate-limit.js';
import { RequestCounter } from './request-counter.js';
import { checkReplicationOptions, startReplication, type Replication, type ReplicationOptions } from './replication.js';
import { SqliteRegistryStore } from './sqlite-store.js';
import { computeStats, type RegistryStats } from './stats.js';
import type { RegistryStore } from './store.js';
import type { RegistryTlsMaterial } from './tls.js';

export interface RegistryServerOptions {
  /** Interface to bind; all interfaces when omitted or empty. */
  host?: string;
  /** 0 = ephemeral; `RegistryServer.port` tells the bound one. */
  port: number;
  /** SQLite file, or `':memory:'`. Ignored when `store` is given. */
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
  #closing: Promise<void> | undefined;

  private constructor(
    server: Server,
    state: RegistryState,
    host: string,
    tlsFingerprint: string | undefined,
    replication: Replication,
    limits: ConnectionLimits,
  ) {
    this.#server = server;
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
    this.#sweep = setInterval(() => this.#housekeeping(), SWEEP_INTERVAL_MS);
    this.#sweep.unref();
  }

  static async start(opts: RegistryServerOptions): Promise<RegistryServer> {
    const now = opts.now ?? Date.now;
    const log = opts.log ?? silentLogger();
    const replicationSettings = checkReplicationOptions(opts.replication);
    const store = opts.store ?? new SqliteRegistryStore(opts.storePath);
    const liveness = new Liveness();
    // A restart must not make every node offline until its next heartbeat: fresh grace period.
    const started = now();
    for (const node of store.listRegistered()) liveness.touch(node.id, started);

    let self: RegistryServer | undefined;
    let replication: Replication | undefined;
    const state: RegistryState = {
      store,
      log,
      liveness,
      verifier: new SignatureVerifier(started),
      registerLimiter: new KeyedRateLimiter<string>(REGISTER_RATE.perSecond, REGISTER_RATE.burst),
      adminToken: opts.adminToken === '' ? undefined : opts.adminToken,
      requireSignedBody: opts.requireSignedBody === true,
      requests: new RequestCounter(),
      now,
      taskNow: opts.taskClock ?? now,
      notifyHandshake: (nodeId) => self?.notify(nodeId),
      standby: replicationSettings.primary !== undefined,
      stateChanged: () => replication?.changed(),
    };
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
      store.close();
      throw err;
    }
    replication = startReplication(state, replicationSettings);
    self = new RegistryServer(server, state, host, opts.tls?.fingerprint, replication, {
      ...DEFAULT_LIMITS,
      ...opts.connectionLimits,
    });
    const tls = opts.tls ? { tls_fingerprint: opts.tls.fingerprint } : { tls: false };
    log.info({ host, port: self.port, nodes: store.listRegistered().length, ...tls }, 'registry listening');
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
    return computeStats({
      nodes: store.listRegistered(),
      trustPairs: store.listTrustPairs(),
      isOnline: (id) => liveness.isOnline(id, now),
      totalRequests: requests.total,
      uptimeMs: performance.now() - this.#startedAt,
    });
  }

  /** What a beacon in the same process may know of a registered node (for proofs and punches). */
  nodeFacts(id: number): { publicKey: string; isPublic: boolean } | undefined {
    const node = id === 0 ? undefined : this.#state.store.getNode(id);
    return node?.registered === true ? { publicKey: node.publicKey, isPublic: node.isPublic } : undefined;
  }

  /** Whether two nodes trust each other (each claimed the other). */
  trustPair(a: number, b: number): boolean {
    return trustPairExists(this.#state, a, b);
  }

  /** Nodes online now, from memory only (the dashboard samples it). */
  onlineCount(): number {
    return this.#state.liveness.onlineCount(this.#state.now());
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
      this.#replication.close();
      this.#server.close(() => {
        this.#state.store.close();
        this.#state.log.info('registry closed');
        resolve();
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
    const ip = normalizeIp(socket.remoteAddress ?? '');
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
      normalizeIp(socket.remoteAddress ?? ''),
      {
        state: this.#state,
        requestLimiter: this.#requestLimiter,
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
  #watch(conn: RegistryConnection, msg: JsonObject): number {
    const state = this.#state;
    const id = u32Field(msg, 'node_id');
    const node = registeredNode(state, id);
    const form = state.verifier.verify(node.publicKey, watchChallenge(id), msg, state.now(), { staticAllowed: false });
    if (form === 'signed-body') markSignsBody(state, node);
    const previous = this.#watchers.get(id);
    this.#watchers.set(id, conn);
    if (previous !== undefined && previous !== conn) previous.close();
    return id;
  }

  #housekeeping(): void {
    const state = this.#state;
    const now = state.now();
    try {
      state.verifier.prune(now);
      state.registerLimiter.reap(now);
      this.#requestLimiter.reap(now);
      const expired = state.store.pruneHandshakes(now - HANDSHAKE_TTL_MS);
      state.store.pruneBeacons(now);
      state.store.pruneTaskAcceptances(state.taskNow() - ACCEPTANCE_TTL_MS);
      if (expired > 0) state.log.info({ expired }, 'expired handshake entries removed');
    } catch (err) {
      state.log.error({ err }, 'registry housekeeping failed');
    }
  }
}
