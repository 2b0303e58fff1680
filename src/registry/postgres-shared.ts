import pg from 'pg';
import type { Logger } from '../log.js';
import { STALE_AFTER_MS } from './liveness.js';
import { PgBatch } from './postgres-batch.js';
import { LEASE_CHANNEL, PostgresLease } from './postgres-lease.js';
import type { Mark } from './postgres-node-ops.js';
import type { PostgresNodeView } from './postgres-node-view.js';
import type { SharedRegistryState } from './store.js';

/** The notification channel that carries handshake wake-ups (payload: the node id). */
const CHANNEL = 'pilot_handshake';
/** Changes of node records ('<id>:<version>' or 'reset'; postgres-schema.ts migration 2). */
const NODE_CHANNEL = 'pilot_node';
/** A node not seen for this long before a heartbeat counts as coming back (as in handlers-nodes.ts). */
const COMEBACK_MS = STALE_AFTER_MS / 2;

interface Times {
  readonly seen: ReadonlyMap<number, number>;
  readonly proven: ReadonlyMap<number, number>;
}
/** Backoff of the listening connection's reconnects after a failure. */
const RELISTEN_MIN_MS = 200;
const RELISTEN_MAX_MS = 5000;

/**
 * What registry processes sharing one PostgreSQL database share beyond the tables: replay
 * high-water marks (a conditional upsert decides which process accepted a `signed_at` first),
 * liveness times (written in batches; a time never moves backwards) and handshake wake-ups
 * (NOTIFY on one process, LISTEN on every process: the database pushes, nobody polls). The same
 * listening connection keeps the node records this process holds current (PostgresNodeView) and
 * carries the lease under which they are served (PostgresLease).
 *
 * Replay marks of one event-loop turn go in one statement (with the store's reads and inserts of
 * node records, PgNodeOps), and so do liveness times, through connections that do not wait for
 * the WAL sync (synchronous_commit off), unless inserts share the statement: other processes see
 * them at commit as usual, and only a crash of the database server itself can lose the last
 * fraction of a second of them. Liveness is volatile by design (the next heartbeats restore it).
 * A request that changes durable state commits that change afterwards, synchronously, and WAL is
 * flushed in order, so its mark is durable before its reply; only the mark of a read-only request
 * (e.g. a resolve) can be lost that way, and its signature stays within the ±5 minute window.
 */
export class PostgresSharedState implements SharedRegistryState {
  readonly #pool: pg.Pool;
  /** Connections with synchronous_commit off, for liveness times and replay marks. */
  readonly #volatile: pg.Pool;
  readonly #config: pg.ClientConfig;
  readonly #view: PostgresNodeView;
  readonly #lease: PostgresLease;
  readonly #mark: (mark: Mark) => Promise<boolean>;
  readonly #times = new PgBatch<Times, undefined>((batch) => this.#writeTimes(batch));
  readonly #log: Logger | undefined;
  readonly #listeners: ((nodeId: number) => void)[] = [];
  #listener: pg.Client | undefined;
  #retry: NodeJS.Timeout | undefined;
  #backoff = RELISTEN_MIN_MS;
  #closed = false;

  private constructor(
    pool: pg.Pool,
    volatile: pg.Pool,
    config: pg.ClientConfig,
    view: PostgresNodeView,
    mark: (mark: Mark) => Promise<boolean>,
    log: Logger | undefined,
  ) {
    this.#pool = pool;
    this.#volatile = volatile;
    this.#config = config;
    this.#view = view;
    this.#mark = mark;
    this.#log = log;
    this.#lease = new PostgresLease(view, log);
  }

  /** `volatile`: connections with synchronous_commit off; `mark`: how replay marks are written (PgNodeOps). */
  static async start(
    pool: pg.Pool,
    volatile: pg.Pool,
    config: pg.ClientConfig,
    view: PostgresNodeView,
    mark: (mark: Mark) => Promise<boolean>,
    log?: Logger,
  ): Promise<PostgresSharedState> {
    const shared = new PostgresSharedState(pool, volatile, config, view, mark, log);
    await shared.#listen();
    return shared;
  }

  advanceSignedAt(publicKey: string, type: string, at: number): Promise<boolean> {
    return this.#mark({ publicKey, type, at });
  }

  async pruneSignedAt(before: number): Promise<number> {
    const result = await this.#pool.query('DELETE FROM signed_at_marks WHERE signed_at < $1', [before]);
    return result.rowCount ?? 0;
  }

  async recordLiveness(seen: ReadonlyMap<number, number>, proven: ReadonlyMap<number, number>): Promise<void> {
    // Times already stored (a new node's, written with it) need no statement.
    const newSeen = new Map<number, number>();
    const newProven = new Map<number, number>();
    for (const [id, at] of seen) if (!this.#view.covers(id, at, undefined)) newSeen.set(id, at);
    for (const [id, at] of proven) if (!this.#view.covers(id, undefined, at)) newProven.set(id, at);
    if (newSeen.size === 0 && newProven.size === 0) return;
    await this.#times.add({ seen: newSeen, proven: newProven });
  }

  async #writeTimes(batch: Times[]): Promise<undefined[]> {
    const seen = new Map<number, number>();
    const proven = new Map<number, number>();
    for (const t of batch) {
      for (const [id, at] of t.seen) seen.set(id, Math.max(at, seen.get(id) ?? at));
      for (const [id, at] of t.proven) proven.set(id, Math.max(at, proven.get(id) ?? at));
    }
    // Ids in ascending order, so that two processes writing overlapping batches never deadlock.
    const ids = [...new Set([...seen.keys(), ...proven.keys()])].sort((a, b) => a - b);
    // A node that was not seen for a while is announced ('seen:<id>,…'), so that every process
    // reads its record again rather than taking it for offline from an old copy.
    const announced = await this.#volatile.query({
      name: 'record_liveness',
      // `id = ANY($1)` lets both reads of nodes use its key (a join with the batch alone made the
      // planner scan the whole table, twice).
      text: `WITH v AS (SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS v(id, seen, proven)),
             before AS (SELECT id, last_seen FROM nodes WHERE id = ANY($1::bigint[])),
             u AS (UPDATE nodes SET last_seen = GREATEST(nodes.last_seen, v.seen), last_proven = GREATEST(nodes.last_proven, v.proven)
                   FROM v WHERE nodes.id = v.id AND nodes.id = ANY($1::bigint[]) RETURNING nodes.id)
             SELECT pg_notify('${NODE_CHANNEL}', 'seen:' || string_agg(id::text, ','))
             FROM (SELECT b.id, row_number() OVER () / 500 AS chunk FROM before b JOIN v ON b.id = v.id
                   WHERE v.seen IS NOT NULL AND (b.last_seen IS NULL OR b.last_seen < v.seen - $4)) c
             GROUP BY chunk`,
      values: [ids, ids.map((id) => seen.get(id) ?? null), ids.map((id) => proven.get(id) ?? null), COMEBACK_MS],
    });
    for (const id of ids) this.#view.times(id, seen.get(id), proven.get(id));
    // A node came back: another process may still hold its old copy (offline) until the
    // announcement reaches it, so the heartbeat is answered only once every lease holder applied it.
    if ((announced.rowCount ?? 0) > 0) await this.#lease.settle();
    return batch.map(() => undefined);
  }

  /** After a change of node records committed: resolves once no other process can serve an older copy (postgres-lease.ts). */
  settle(): Promise<void> {
    return this.#lease.settle();
  }

  async announceHandshake(nodeId: number): Promise<void> {
    await this.#pool.query({ name: 'announce', text: 'SELECT pg_notify($1, $2)', values: [CHANNEL, String(nodeId)] });
  }

  onHandshake(listener: (nodeId: number) => void): void {
    this.#listeners.push(listener);
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retry);
    await this.#lease.close();
    const listener = this.#listener;
    this.#listener = undefined;
    await listener?.end().catch(() => undefined);
  }

  async #listen(): Promise<void> {
    // Lease renewals and sync tokens need no WAL sync (postgres-lease.ts): a crash of the server can
    // lose the last renewal (250 ms), less than recovering takes, and drops this connection anyway.
    const client = new pg.Client({ ...this.#config, options: '-c synchronous_commit=off' });
    client.on('notification', (msg) => {
      if (msg.channel === NODE_CHANNEL) {
        this.#nodeChanged(msg.payload ?? '');
        return;
      }
      if (msg.channel === LEASE_CHANNEL) {
        this.#lease.handle(msg.payload ?? '');
        return;
      }
      const id = Number(msg.payload);
      if (msg.channel !== CHANNEL || !Number.isSafeInteger(id)) return;
      for (const listener of this.#listeners) listener(id);
    });
    client.on('error', (err) => this.#lost(client, err));
    client.on('end', () => this.#lost(client, new Error('connection ended')));
    await client.connect();
    await client.query(`LISTEN ${CHANNEL}; LISTEN ${NODE_CHANNEL}; LISTEN ${LEASE_CHANNEL}`);
    this.#listener = client;
    this.#backoff = RELISTEN_MIN_MS;
    // Changes committed from now on are announced; what was read before may have missed some.
    this.#view.setLive(true);
    this.#lease.attach(client);
  }

  #nodeChanged(payload: string): void {
    if (payload.startsWith('seen:')) {
      for (const id of payload.slice(5).split(',')) this.#view.forget(Number(id));
      return;
    }
    const [id, version] = payload.split(':').map(Number);
    if (id === undefined || version === undefined || !Number.isSafeInteger(id) || !Number.isSafeInteger(version))
      this.#view.reset();
    else this.#view.announced(id, version);
  }

  /** The listening connection failed: wake-ups sent meanwhile are lost (daemons also poll), so reconnect. */
  #lost(client: pg.Client, err: Error): void {
    if (this.#closed || this.#listener !== client) return;
    this.#listener = undefined;
    this.#view.setLive(false);
    this.#lease.detach();
    client.end().catch(() => undefined);
    this.#log?.warn({ err: err.message, retry_ms: this.#backoff }, 'handshake notifications lost; listening again');
    this.#schedule();
  }

  #schedule(): void {
    this.#retry = setTimeout(() => {
      this.#listen().catch((err: unknown) => {
        this.#log?.debug({ err: err instanceof Error ? err.message : String(err) }, 'LISTEN reconnect failed');
        this.#backoff = Math.min(this.#backoff * 2, RELISTEN_MAX_MS);
        this.#schedule();
      });
    }, this.#backoff);
    this.#retry.unref();
  }
}
