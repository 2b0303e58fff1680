import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { silentLogger, type Logger } from '../log.js';
import type { JsonObject } from '../protocol/json.js';
import { SignatureVerifier } from './auth.js';
import { RegistryConnection } from './connection.js';
import { registeredNode, type RegistryState } from './context.js';
import { normalizeIp } from './endpoint.js';
import { u32Field } from './fields.js';
import { watchChallenge } from './challenges.js';
import { HANDSHAKE_TTL_MS } from './handlers-trust.js';
import { Liveness } from './liveness.js';
import { RateLimiter } from './rate-limit.js';
import { checkReplicationOptions, startReplication, type Replication, type ReplicationOptions } from './replication.js';
import { SqliteRegistryStore } from './sqlite-store.js';
import type { RegistryStore } from './store.js';

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
  /** Primary (a token standbys present) or read-only standby of a primary (PROTOCOL.md §5.10). */
  replication?: ReplicationOptions;
}

/** Per-IP limits: registrations of new keys (as the reference) and requests of any kind. */
const REGISTER_RATE = { perSecond: 10 / 60, burst: 10 };
const REQUEST_RATE = { perSecond: 200, burst: 400 };
const MAX_CONNECTIONS_PER_IP = 256;
const MAX_CONNECTIONS = 10_000;
const SWEEP_INTERVAL_MS = 60_000;

/** The registry (rendezvous) server of PROTOCOL.md §5 over TCP. */
export class RegistryServer {
  readonly port: number;
  readonly host: string;
  readonly #server: Server;
  readonly #state: RegistryState;
  readonly #requestLimiter = new RateLimiter(REQUEST_RATE.perSecond, REQUEST_RATE.burst);
  readonly #connections = new Set<RegistryConnection>();
  readonly #perIp = new Map<string, number>();
  readonly #watchers = new Map<number, RegistryConnection>();
  readonly #sweep: NodeJS.Timeout;
  readonly #replication: Replication;
  #closing: Promise<void> | undefined;

  private constructor(server: Server, state: RegistryState, host: string, replication: Replication) {
    this.#server = server;
    this.#state = state;
    this.#replication = replication;
    this.host = host;
    this.port = (server.address() as AddressInfo).port;
    server.on('connection', (socket) => this.#accept(socket));
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
      verifier: new SignatureVerifier(),
      registerLimiter: new RateLimiter(REGISTER_RATE.perSecond, REGISTER_RATE.burst),
      adminToken: opts.adminToken === '' ? undefined : opts.adminToken,
      now,
      taskNow: opts.taskClock ?? now,
      notifyHandshake: (nodeId) => self?.notify(nodeId),
      standby: replicationSettings.primary !== undefined,
      stateChanged: () => replication?.changed(),
    };
    const server = createServer({ noDelay: true });
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
    self = new RegistryServer(server, state, host, replication);
    log.info({ host, port: self.port, nodes: store.listRegistered().length }, 'registry listening');
    return self;
  }

  /** Wakes the node's push channel (our extension: handshakes arrive without waiting for a poll). */
  notify(nodeId: number): void {
    const conn = this.#watchers.get(nodeId);
    if (conn === undefined) return;
    conn.send({ type: 'handshake_notify', node_id: nodeId });
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
    });
    return this.#closing;
  }

  #accept(socket: Socket): void {
    const ip = normalizeIp(socket.remoteAddress ?? '');
    const count = this.#perIp.get(ip) ?? 0;
    if (this.#closing !== undefined || count >= MAX_CONNECTIONS_PER_IP || this.#connections.size >= MAX_CONNECTIONS) {
      this.#state.log.warn({ ip, count }, 'connection refused: too many connections');
      socket.destroy();
      return;
    }
    this.#perIp.set(ip, count + 1);
    const conn = new RegistryConnection(socket, ip, {
      state: this.#state,
      requestLimiter: this.#requestLimiter,
      watch: (c, msg) => this.#watch(c, msg),
      subscribe: (c, msg) => this.#replication.subscribe(c, msg),
      closed: (c) => this.#closed(c),
    });
    this.#connections.add(conn);
  }

  #closed(conn: RegistryConnection): void {
    if (!this.#connections.delete(conn)) return;
    const left = (this.#perIp.get(conn.remoteIp) ?? 1) - 1;
    if (left <= 0) this.#perIp.delete(conn.remoteIp);
    else this.#perIp.set(conn.remoteIp, left);
    if (conn.watching !== undefined && this.#watchers.get(conn.watching) === conn) this.#watchers.delete(conn.watching);
  }

  /** Always timestamped (no Go client sends it); one channel per node, the newest wins. */
  #watch(conn: RegistryConnection, msg: JsonObject): number {
    const state = this.#state;
    const id = u32Field(msg, 'node_id');
    const node = registeredNode(state, id);
    state.verifier.verify(node.publicKey, watchChallenge(id), msg, state.now(), { requireTimestamp: true });
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
      state.registerLimiter.prune(now, 120_000);
      this.#requestLimiter.prune(now, 120_000);
      const expired = state.store.pruneHandshakes(now - HANDSHAKE_TTL_MS);
      state.store.pruneBeacons(now);
      if (expired > 0) state.log.info({ expired }, 'expired handshake entries removed');
    } catch (err) {
      state.log.error({ err }, 'registry housekeeping failed');
    }
  }
}
