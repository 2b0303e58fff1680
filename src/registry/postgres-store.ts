import pg from 'pg';
import type { Logger } from '../log.js';
import { migrate } from './postgres-schema.js';
import {
  columnValue,
  conflict,
  LOCK_ACCEPTANCES,
  LOCK_INBOX,
  lockKey,
  NODE_COLUMNS,
  type RequestRow,
  SESSION_OPTIONS,
  BATCH_OPTIONS,
  type ResponseRow,
  TYPES,
} from './postgres-rows.js';
import { type NodeRow, toNode, toRequest, toResponse } from './store-rows.js';
import { PgBatch } from './postgres-batch.js';
import { PgNodeOps, type VersionedRow } from './postgres-node-ops.js';
import { PostgresNodeView, type ReadTicket } from './postgres-node-view.js';
import { PostgresSharedState } from './postgres-shared.js';
import { exportPostgresState, replacePostgresState } from './postgres-snapshot.js';
import { StoreConflictError } from './store-errors.js';
import type {
  AddRequestResult,
  BeaconRecord,
  HandshakeRequest,
  HandshakeResponse,
  NewNode,
  NodePatch,
  NodeRecord,
  ReceiptHistory,
  RegistryStore,
  StoreContents,
  TaskAcceptance,
  TaskEvidence,
} from './store.js';

export interface PostgresStoreOptions {
  /** Connections in the pool (default 10). */
  readonly poolSize?: number;
  readonly log?: Logger;
}

/**
 * The registry store on PostgreSQL, shared by any number of registry processes. Ids come from a
 * sequence (never reused), hostnames and keys are unique by constraint, multi-step changes run in
 * transactions (per-target advisory locks where a bound is counted), and the state an embedded
 * store keeps in memory is shared through the database (see PostgresSharedState).
 *
 * Node records read or written are kept in memory, current through the database's announcements
 * and served under a lease (PostgresNodeView, postgres-lease.ts): lookups and signature checks of
 * known nodes need no round trip, and a change is answered only once no other process can serve
 * the older record. Reads of unknown records and inserts of new nodes of one event-loop turn go in
 * one statement (one commit).
 */
export class PostgresRegistryStore implements RegistryStore {
  readonly shared: PostgresSharedState;
  readonly #pool: pg.Pool;
  /** The batched statements' connections (BATCH_OPTIONS), one waiting for the WAL sync and one not. */
  readonly #batches: readonly [pg.Pool, pg.Pool];
  readonly #view: PostgresNodeView;
  /** Reads of records not in the view, inserts of new nodes and replay marks, one statement per turn. */
  readonly #nodes: PgNodeOps;
  /** Trust claims asked about in one turn (a resolve asks both directions), one statement. */
  readonly #claims = new PgBatch<readonly [number, number], boolean>((pairs) => this.#hasClaims(pairs));

  private constructor(
    pool: pg.Pool,
    batches: readonly [pg.Pool, pg.Pool],
    shared: PostgresSharedState,
    view: PostgresNodeView,
    nodes: PgNodeOps,
  ) {
    this.#pool = pool;
    this.#batches = batches;
    this.shared = shared;
    this.#view = view;
    this.#nodes = nodes;
  }

  static async open(url: string, opts: PostgresStoreOptions = {}): Promise<PostgresRegistryStore> {
    const pool = new pg.Pool({
      connectionString: url,
      max: opts.poolSize ?? 10,
      types: TYPES,
      options: SESSION_OPTIONS,
    });
    // One statement of each batch runs at a time: the durable one (with inserts) and the volatile
    // ones (replay marks and reads, liveness times; synchronous_commit off).
    const durable = new pg.Pool({ connectionString: url, max: 1, types: TYPES, options: BATCH_OPTIONS });
    const volatile = new pg.Pool({
      connectionString: url,
      max: 2,
      types: TYPES,
      options: `${BATCH_OPTIONS} -c synchronous_commit=off`,
    });
    for (const p of [pool, durable, volatile])
      p.on('error', (err) => opts.log?.warn({ err: err.message }, 'idle PostgreSQL connection failed'));
    try {
      const client = await pool.connect();
      try {
        const applied = await migrate(client);
        if (applied.length > 0) opts.log?.info({ versions: applied }, 'PostgreSQL store migrated');
        await client.query("INSERT INTO meta (key, value) VALUES ('backbone_created', $1) ON CONFLICT DO NOTHING", [
          Date.now(),
        ]);
      } finally {
        client.release();
      }
      const view = new PostgresNodeView();
      const nodes = new PgNodeOps(
        async (text, values, sync) =>
          (await (sync ? durable : volatile).query({ name: statementName('nodes', text), text, values })).rows,
      );
      const config = { connectionString: url, types: TYPES };
      const shared = await PostgresSharedState.start(pool, volatile, config, view, (m) => nodes.mark(m), opts.log);
      return new PostgresRegistryStore(pool, [durable, volatile], shared, view, nodes);
    } catch (err) {
      await Promise.all([pool, durable, volatile].map((p) => p.end().catch(() => undefined)));
      throw err;
    }
  }

  async #rows<R extends object>(name: string, text: string, values: unknown[] = []): Promise<R[]> {
    return (await this.#pool.query<R>({ name, text, values })).rows;
  }

  async #count(name: string, text: string, values: unknown[]): Promise<number> {
    return (await this.#pool.query({ name, text, values })).rowCount ?? 0;
  }

  async #tx<T>(work: (c: pg.PoolClient) => Promise<T>, mode = 'BEGIN'): Promise<T> {
    const client = await this.#pool.connect();
    try {
      await client.query(mode);
      const result = await work(client);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw conflict(err);
    } finally {
      client.release();
    }
  }

  async #node(name: string, text: string, value: string | number): Promise<NodeRecord | undefined> {
    const ticket = this.#view.ticket();
    const row = (await this.#rows<VersionedRow>(name, text, [value]))[0];
    return row === undefined ? undefined : this.#keep(row, ticket);
  }

  /** The record of a row read or written, kept in the view. */
  #keep(row: NodeRow & { version?: number }, ticket: ReadTicket): NodeRecord {
    const node = toNode(row);
    if (row.version !== undefined) this.#view.put(node, row.version, ticket);
    return node;
  }

  async #read(ticket: ReadTicket, read: Promise<VersionedRow | undefined>): Promise<NodeRecord | undefined> {
    const row = await read;
    return row === undefined ? undefined : this.#keep(row, ticket);
  }

  // A copy in the view is current: the view serves only under a lease, and a change is acknowledged
  // only after every process holding one applied it (postgres-lease.ts).

  async getNode(id: number): Promise<NodeRecord | undefined> {
    return this.#view.get(id)?.node ?? this.#read(this.#view.ticket(), this.#nodes.byId(id));
  }

  async getNodeByKey(publicKey: string): Promise<NodeRecord | undefined> {
    return this.#view.byKey(publicKey)?.node ?? this.#read(this.#view.ticket(), this.#nodes.byKey(publicKey));
  }

  async getNodeByOwner(owner: string): Promise<NodeRecord | undefined> {
    if (owner === '') return undefined;
    return this.#node('node_by_owner', 'SELECT * FROM nodes WHERE owner = $1 ORDER BY id LIMIT 1', owner);
  }

  async getNodeByHostname(hostname: string): Promise<NodeRecord | undefined> {
    if (hostname === '') return undefined;
    return (
      this.#view.byHostname(hostname)?.node ??
      this.#node('node_by_hostname', 'SELECT * FROM nodes WHERE hostname = $1', hostname)
    );
  }

  async listRegistered(): Promise<NodeRecord[]> {
    return (await this.#rows<NodeRow>('registered', 'SELECT * FROM nodes WHERE registered ORDER BY id')).map(toNode);
  }

  async createNode(node: NewNode): Promise<NodeRecord> {
    const ticket = this.#view.ticket();
    let row: NodeRow | undefined;
    try {
      row = await this.#nodes.create(node);
    } catch (err) {
      if (err instanceof pg.DatabaseError && err.code === '2200H')
        throw new RangeError('node ids are exhausted: every u32 id has been handed out');
      throw conflict(err);
    }
    if (row === undefined) throw new StoreConflictError('public_key', 'public key is taken');
    return this.#keep(row, ticket);
  }

  /**
   * Only a patch that changes something writes (and gets a new version); the writer then waits
   * until no process can serve the older record (postgres-lease.ts). A patch that changes nothing
   * reads the record instead.
   */
  async updateNode(id: number, patch: NodePatch): Promise<NodeRecord> {
    const columns: string[] = [];
    const values: unknown[] = [];
    for (const [key, value] of Object.entries(patch)) {
      const column = NODE_COLUMNS[key];
      if (column === undefined || value === undefined) continue;
      values.push(columnValue(key, value));
      columns.push(column);
    }
    values.push(id);
    const at = `$${values.length}`;
    const params = columns.map((_, i) => `$${i + 1}`);
    const ticket = this.#view.ticket();
    let row: NodeRow | undefined;
    if (columns.length > 0) {
      const text = `UPDATE nodes SET ${columns.map((c, i) => `${c} = ${params[i]}`).join(', ')} WHERE id = ${at}
        AND (${columns.join(', ')}, 0) IS DISTINCT FROM (${params.join(', ')}, 0) RETURNING *`;
      try {
        row = (await this.#rows<NodeRow>(statementName('update_node', text), text, values))[0];
      } catch (err) {
        throw conflict(err);
      }
      if (row !== undefined) {
        const node = this.#keep(row, ticket);
        await this.shared.settle();
        return node;
      }
    }
    row = (await this.#rows<NodeRow>('node_by_id', 'SELECT * FROM nodes WHERE id = $1', [id]))[0];
    if (row === undefined) throw new RangeError(`no node ${id}`);
    return this.#keep(row, ticket);
  }

  async addTrustClaim(from: number, to: number, at: number): Promise<void> {
    await this.#count(
      'add_claim',
      'INSERT INTO trust_claims (from_id, to_id, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING',
      [from, to, at],
    );
  }

  hasTrustClaim(from: number, to: number): Promise<boolean> {
    return this.#claims.add([from, to]);
  }

  async #hasClaims(pairs: (readonly [number, number])[]): Promise<boolean[]> {
    const rows = await this.#rows<{ from_id: number; to_id: number }>(
      'has_claims',
      'SELECT c.from_id, c.to_id FROM trust_claims c JOIN unnest($1::bigint[], $2::bigint[]) AS v(f, t) ON c.from_id = v.f AND c.to_id = v.t',
      [pairs.map((p) => p[0]), pairs.map((p) => p[1])],
    );
    const found = new Set(rows.map((r) => `${r.from_id}:${r.to_id}`));
    return pairs.map(([f, t]) => found.has(`${f}:${t}`));
  }

  removeTrustPair(a: number, b: number): Promise<number> {
    return this.#count(
      'remove_pair',
      'DELETE FROM trust_claims WHERE (from_id = $1 AND to_id = $2) OR (from_id = $2 AND to_id = $1)',
      [a, b],
    );
  }

  async listTrustPairs(): Promise<[number, number][]> {
    const rows = await this.#rows<{ a: number; b: number }>(
      'trust_pairs',
      'SELECT c.from_id AS a, c.to_id AS b FROM trust_claims c JOIN trust_claims r ON r.from_id = c.to_id AND r.to_id = c.from_id WHERE c.from_id < c.to_id ORDER BY a, b',
    );
    return rows.map((r): [number, number] => [r.a, r.b]);
  }

  addHandshakeRequest(r: HandshakeRequest, maxPerTarget: number): Promise<AddRequestResult> {
    return this.#tx(async (c) => {
      // One writer per inbox at a time, so that the bound holds across processes.
      await c.query('SELECT pg_advisory_xact_lock($1)', [lockKey(LOCK_INBOX, r.toNodeId)]);
      const refreshed = await c.query(
        'UPDATE handshake_requests SET justification = $1, created_at = $2, delivered = false WHERE to_id = $3 AND from_id = $4',
        [r.justification, r.createdAt, r.toNodeId, r.fromNodeId],
      );
      if ((refreshed.rowCount ?? 0) > 0) return 'refreshed';
      const count = await c.query<{ n: number }>(
        'SELECT COUNT(*)::bigint AS n FROM handshake_requests WHERE to_id = $1',
        [r.toNodeId],
      );
      if ((count.rows[0]?.n ?? 0) >= maxPerTarget) return 'full';
      await c.query(
        'INSERT INTO handshake_requests (to_id, from_id, justification, created_at) VALUES ($1, $2, $3, $4)',
        [r.toNodeId, r.fromNodeId, r.justification, r.createdAt],
      );
      return 'added';
    });
  }

  async takeHandshakeRequest(from: number, to: number): Promise<HandshakeRequest | undefined> {
    const rows = await this.#rows<RequestRow>(
      'take_request',
      'DELETE FROM handshake_requests WHERE to_id = $1 AND from_id = $2 RETURNING *',
      [to, from],
    );
    return rows[0] === undefined ? undefined : toRequest(rows[0]);
  }

  async deliverHandshakeRequests(to: number): Promise<HandshakeRequest[]> {
    const rows = await this.#rows<RequestRow>(
      'deliver_requests',
      'UPDATE handshake_requests SET delivered = true WHERE to_id = $1 AND NOT delivered RETURNING *',
      [to],
    );
    return rows.map(toRequest).sort((a, b) => a.createdAt - b.createdAt || a.fromNodeId - b.fromNodeId);
  }

  addHandshakeResponse(r: HandshakeResponse, maxPerTarget: number): Promise<void> {
    return this.#tx(async (c) => {
      await c.query('SELECT pg_advisory_xact_lock($1)', [lockKey(LOCK_INBOX, r.toNodeId)]);
      await c.query('INSERT INTO handshake_responses (to_id, from_id, accept, created_at) VALUES ($1, $2, $3, $4)', [
        r.toNodeId,
        r.fromNodeId,
        r.accept,
        r.createdAt,
      ]);
      await c.query(
        'DELETE FROM handshake_responses WHERE to_id = $1 AND seq NOT IN (SELECT seq FROM handshake_responses WHERE to_id = $1 ORDER BY seq DESC LIMIT $2)',
        [r.toNodeId, maxPerTarget],
      );
    });
  }

  async takeHandshakeResponses(to: number): Promise<HandshakeResponse[]> {
    const rows = await this.#rows<ResponseRow>(
      'take_responses',
      'DELETE FROM handshake_responses WHERE to_id = $1 RETURNING *',
      [to],
    );
    return rows.sort((a, b) => a.seq - b.seq).map(toResponse);
  }

  async pruneHandshakes(createdBefore: number): Promise<number> {
    const a = await this.#count('prune_requests', 'DELETE FROM handshake_requests WHERE created_at < $1', [
      createdBefore,
    ]);
    const b = await this.#count('prune_responses', 'DELETE FROM handshake_responses WHERE created_at < $1', [
      createdBefore,
    ]);
    return a + b;
  }

  async applyTaskEvidence(e: TaskEvidence): Promise<boolean> {
    const applied = await this.#tx(async (c) => {
      const added = await c.query(
        'INSERT INTO task_evidence (task_id, submitter, executor, kind, submitter_delta, executor_delta, applied_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING',
        [e.taskId, e.submitter, e.executor, e.kind, e.submitterDelta, e.executorDelta, e.at],
      );
      if ((added.rowCount ?? 0) === 0) return false;
      const bump = 'UPDATE nodes SET polo_score = polo_score + $1 WHERE id = $2';
      if (e.submitterDelta !== 0) await c.query(bump, [e.submitterDelta, e.submitter]);
      if (e.executorDelta !== 0) await c.query(bump, [e.executorDelta, e.executor]);
      if (e.kind === 'receipt') {
        await c.query('DELETE FROM task_acceptances WHERE task_id = $1 AND submitter = $2 AND executor = $3', [
          e.taskId,
          e.submitter,
          e.executor,
        ]);
      }
      return true;
    });
    if (applied && (e.submitterDelta !== 0 || e.executorDelta !== 0)) await this.shared.settle();
    return applied;
  }

  recordTaskAcceptance(a: TaskAcceptance, maxOpen: number): Promise<'recorded' | 'known' | 'full'> {
    return this.#tx(async (c) => {
      await c.query('SELECT pg_advisory_xact_lock($1)', [lockKey(LOCK_ACCEPTANCES, a.executor)]);
      const known = await c.query(
        'SELECT 1 FROM task_acceptances WHERE task_id = $1 AND submitter = $2 AND executor = $3',
        [a.taskId, a.submitter, a.executor],
      );
      if ((known.rowCount ?? 0) > 0) return 'known';
      const open = await c.query<{ n: number }>(
        'SELECT COUNT(*)::bigint AS n FROM task_acceptances WHERE executor = $1',
        [a.executor],
      );
      if ((open.rows[0]?.n ?? 0) >= maxOpen) return 'full';
      await c.query('INSERT INTO task_acceptances (task_id, submitter, executor, seen_at) VALUES ($1, $2, $3, $4)', [
        a.taskId,
        a.submitter,
        a.executor,
        a.seenAt,
      ]);
      return 'recorded';
    });
  }

  async getTaskAcceptance(taskId: string, submitter: number, executor: number): Promise<TaskAcceptance | undefined> {
    const rows = await this.#rows<{ seen_at: number }>(
      'get_acceptance',
      'SELECT seen_at FROM task_acceptances WHERE task_id = $1 AND submitter = $2 AND executor = $3',
      [taskId, submitter, executor],
    );
    return rows[0] === undefined ? undefined : { taskId, submitter, executor, seenAt: rows[0].seen_at };
  }

  pruneTaskAcceptances(seenBefore: number): Promise<number> {
    return this.#count('prune_acceptances', 'DELETE FROM task_acceptances WHERE seen_at < $1', [seenBefore]);
  }

  async receiptHistory(submitter: number, executor: number, since: number): Promise<ReceiptHistory> {
    const rows = await this.#rows<{ n: number; g: number | null }>(
      'receipt_history',
      `SELECT
         COUNT(*) FILTER (WHERE (submitter = $2 AND executor = $3) OR (submitter = $3 AND executor = $2))::bigint AS n,
         SUM(executor_delta) FILTER (WHERE executor = $3)::bigint AS g
       FROM task_evidence WHERE kind = 'receipt' AND applied_at >= $1`,
      [since, submitter, executor],
    );
    return { pairReceipts: rows[0]?.n ?? 0, executorGain: rows[0]?.g ?? 0 };
  }

  exportState(): Promise<StoreContents> {
    return this.#tx((c) => exportPostgresState(c), 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  }

  async replaceState(contents: StoreContents): Promise<void> {
    await this.#tx((c) => replacePostgresState(c, contents));
    await this.shared.settle();
  }

  async upsertBeacon(b: BeaconRecord): Promise<void> {
    await this.#count(
      'upsert_beacon',
      'INSERT INTO beacons (id, addr, expires_at) VALUES ($1, $2, $3) ON CONFLICT (id) DO UPDATE SET addr = EXCLUDED.addr, expires_at = EXCLUDED.expires_at',
      [b.id, b.addr, b.expiresAt],
    );
  }

  async listBeacons(now: number): Promise<BeaconRecord[]> {
    const rows = await this.#rows<{ id: number; addr: string; expires_at: number }>(
      'list_beacons',
      'SELECT * FROM beacons WHERE expires_at > $1 ORDER BY id',
      [now],
    );
    return rows.map((r) => ({ id: r.id, addr: r.addr, expiresAt: r.expires_at }));
  }

  pruneBeacons(now: number): Promise<number> {
    return this.#count('prune_beacons', 'DELETE FROM beacons WHERE expires_at <= $1', [now]);
  }

  async close(): Promise<void> {
    await this.shared.close();
    await Promise.all(this.#batches.map((p) => p.end().catch(() => undefined)));
    await this.#pool.end();
  }
}

/** Names of generated statements: PostgreSQL keeps only 63 characters of a name, so they are numbered. */
const STATEMENT_NAMES = new Map<string, string>();

function statementName(kind: string, text: string): string {
  let name = STATEMENT_NAMES.get(text);
  if (name === undefined) {
    name = `${kind}_${STATEMENT_NAMES.size + 1}`;
    STATEMENT_NAMES.set(text, name);
  }
  return name;
}
