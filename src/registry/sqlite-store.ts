import Database from 'better-sqlite3';
import type {
  AddRequestResult,
  ReceiptHistory,
  TaskAcceptance,
  BeaconRecord,
  HandshakeRequest,
  HandshakeResponse,
  NewNode,
  NodePatch,
  NodeRecord,
  SyncRegistryStore,
  StoreContents,
  TaskEvidence,
} from './store.js';
import { SqliteGroupCommit } from './sqlite-group-commit.js';
import { migrateSqlite, SCHEMA } from './sqlite-schema.js';
import { type NodeRow, type RequestRow, type ResponseRow, toNode, toRequest, toResponse } from './store-rows.js';
import { exportSqliteState, replaceSqliteState } from './sqlite-snapshot.js';

const MAX_NODE_ID = 0xffffffff;

/**
 * The default store: one SQLite file in WAL mode with synchronous=FULL, so a change is on disk
 * before the reply that acknowledges it is written. `':memory:'` gives a throw-away store.
 */
export class SqliteRegistryStore implements SyncRegistryStore {
  readonly #db: Database.Database;
  /** Statements prepared once per SQL text (the dynamic node UPDATEs vary only by which fields change). */
  readonly #statements = new Map<string, Database.Statement>();
  /** Batches the writes of the asynchronous interface (embedded-store.ts); direct callers commit as before. */
  readonly groupCommit: SqliteGroupCommit;

  constructor(path: string) {
    this.#db = new Database(path);
    if (path !== ':memory:') this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('synchronous = FULL');
    this.#db.pragma('busy_timeout = 5000');
    this.groupCommit = new SqliteGroupCommit(this.#db);
    this.#db.exec(SCHEMA);
    migrateSqlite(this.#db);
    this.#stmt("INSERT OR IGNORE INTO meta (key, value) VALUES ('backbone_created', ?)").run(Date.now());
  }

  #stmt<P extends unknown[] = unknown[], R = unknown>(sql: string): Database.Statement<P, R> {
    let stmt = this.#statements.get(sql);
    if (stmt === undefined) {
      stmt = this.#db.prepare(sql);
      this.#statements.set(sql, stmt);
    }
    return stmt as unknown as Database.Statement<P, R>;
  }

  #node(sql: string, param: string | number): NodeRecord | undefined {
    const row = this.#stmt<[string | number], NodeRow>(sql).get(param);
    return row === undefined ? undefined : toNode(row);
  }

  getNode(id: number): NodeRecord | undefined {
    return this.#node('SELECT * FROM nodes WHERE id = ?', id);
  }

  getNodeByKey(publicKey: string): NodeRecord | undefined {
    return this.#node('SELECT * FROM nodes WHERE public_key = ?', publicKey);
  }

  getNodeByOwner(owner: string): NodeRecord | undefined {
    if (owner === '') return undefined;
    return this.#node('SELECT * FROM nodes WHERE owner = ? ORDER BY id LIMIT 1', owner);
  }

  getNodeByHostname(hostname: string): NodeRecord | undefined {
    if (hostname === '') return undefined;
    return this.#node('SELECT * FROM nodes WHERE hostname = ?', hostname);
  }

  listRegistered(): NodeRecord[] {
    return this.#stmt<[], NodeRow>('SELECT * FROM nodes WHERE registered = 1 ORDER BY id').all().map(toNode);
  }

  createNode(node: NewNode): NodeRecord {
    const create = this.#db.transaction((n: NewNode): number => {
      const row = this.#stmt<[], { value: number }>("SELECT value FROM meta WHERE key = 'next_node'").get();
      const id = Math.max(1, row?.value ?? 1);
      if (id > MAX_NODE_ID) throw new RangeError('node ids are exhausted: every u32 id has been handed out');
      this.#stmt('INSERT INTO nodes (id, public_key, owner, real_addr, signs_body) VALUES (?, ?, ?, ?, ?)').run(
        id,
        n.publicKey,
        n.owner,
        n.realAddr,
        n.signsBody === true ? 1 : 0,
      );
      this.#stmt("UPDATE meta SET value = ? WHERE key = 'next_node'").run(id + 1);
      return id;
    });
    const id = create.immediate(node);
    return this.getNode(id) as NodeRecord;
  }

  updateNode(id: number, patch: NodePatch): NodeRecord {
    const sets: string[] = [];
    const values: (string | number | null)[] = [];
    const set = (column: string, value: string | number | null): void => {
      sets.push(`${column} = ?`);
      values.push(value);
    };
    if (patch.publicKey !== undefined) set('public_key', patch.publicKey);
    if (patch.owner !== undefined) set('owner', patch.owner);
    if (patch.realAddr !== undefined) set('real_addr', patch.realAddr);
    if (patch.isPublic !== undefined) set('is_public', patch.isPublic ? 1 : 0);
    if (patch.hostname !== undefined) set('hostname', patch.hostname === '' ? null : patch.hostname);
    if (patch.tags !== undefined) set('tags', JSON.stringify(patch.tags));
    if (patch.taskExec !== undefined) set('task_exec', patch.taskExec ? 1 : 0);
    if (patch.poloScore !== undefined) set('polo_score', Math.trunc(patch.poloScore));
    if (patch.registered !== undefined) set('registered', patch.registered ? 1 : 0);
    if (patch.signsBody !== undefined) set('signs_body', patch.signsBody ? 1 : 0);
    if (sets.length > 0) {
      const info = this.#stmt(`UPDATE nodes SET ${sets.join(', ')} WHERE id = ?`).run(...values, id);
      if (info.changes === 0) throw new RangeError(`no node ${id}`);
    }
    const node = this.getNode(id);
    if (node === undefined) throw new RangeError(`no node ${id}`);
    return node;
  }

  addTrustClaim(from: number, to: number, at: number): void {
    this.#stmt('INSERT OR IGNORE INTO trust_claims (from_id, to_id, created_at) VALUES (?, ?, ?)').run(from, to, at);
  }

  hasTrustClaim(from: number, to: number): boolean {
    return this.#stmt('SELECT 1 FROM trust_claims WHERE from_id = ? AND to_id = ?').get(from, to) !== undefined;
  }

  removeTrustPair(a: number, b: number): number {
    const sql = 'DELETE FROM trust_claims WHERE (from_id = ? AND to_id = ?) OR (from_id = ? AND to_id = ?)';
    return this.#stmt(sql).run(a, b, b, a).changes;
  }

  addHandshakeRequest(request: HandshakeRequest, maxPerTarget: number): AddRequestResult {
    const add = this.#db.transaction((r: HandshakeRequest): AddRequestResult => {
      const refreshed = this.#stmt(
        'UPDATE handshake_requests SET justification = ?, created_at = ?, delivered = 0 WHERE to_id = ? AND from_id = ?',
      ).run(r.justification, r.createdAt, r.toNodeId, r.fromNodeId);
      if (refreshed.changes > 0) return 'refreshed';
      const count = this.#stmt<[number], { n: number }>(
        'SELECT COUNT(*) AS n FROM handshake_requests WHERE to_id = ?',
      ).get(r.toNodeId);
      if ((count?.n ?? 0) >= maxPerTarget) return 'full';
      this.#stmt('INSERT INTO handshake_requests (to_id, from_id, justification, created_at) VALUES (?, ?, ?, ?)').run(
        r.toNodeId,
        r.fromNodeId,
        r.justification,
        r.createdAt,
      );
      return 'added';
    });
    return add.immediate(request);
  }

  takeHandshakeRequest(from: number, to: number): HandshakeRequest | undefined {
    const row = this.#stmt<[number, number], RequestRow>(
      'DELETE FROM handshake_requests WHERE to_id = ? AND from_id = ? RETURNING *',
    ).get(to, from);
    return row === undefined ? undefined : toRequest(row);
  }

  deliverHandshakeRequests(to: number): HandshakeRequest[] {
    const rows = this.#stmt<[number], RequestRow>(
      'UPDATE handshake_requests SET delivered = 1 WHERE to_id = ? AND delivered = 0 RETURNING *',
    ).all(to);
    return rows.map(toRequest).sort((a, b) => a.createdAt - b.createdAt || a.fromNodeId - b.fromNodeId);
  }

  addHandshakeResponse(response: HandshakeResponse, maxPerTarget: number): void {
    const add = this.#db.transaction((r: HandshakeResponse): void => {
      this.#stmt('INSERT INTO handshake_responses (to_id, from_id, accept, created_at) VALUES (?, ?, ?, ?)').run(
        r.toNodeId,
        r.fromNodeId,
        r.accept ? 1 : 0,
        r.createdAt,
      );
      this.#stmt(
        'DELETE FROM handshake_responses WHERE to_id = ? AND seq NOT IN (SELECT seq FROM handshake_responses WHERE to_id = ? ORDER BY seq DESC LIMIT ?)',
      ).run(r.toNodeId, r.toNodeId, maxPerTarget);
    });
    add.immediate(response);
  }

  takeHandshakeResponses(to: number): HandshakeResponse[] {
    const take = this.#db.transaction((id: number): ResponseRow[] => {
      const rows = this.#stmt<[number], ResponseRow>(
        'SELECT * FROM handshake_responses WHERE to_id = ? ORDER BY seq',
      ).all(id);
      this.#stmt('DELETE FROM handshake_responses WHERE to_id = ?').run(id);
      return rows;
    });
    return take.immediate(to).map(toResponse);
  }

  pruneHandshakes(createdBefore: number): number {
    const prune = this.#db.transaction((cut: number): number => {
      const a = this.#stmt('DELETE FROM handshake_requests WHERE created_at < ?').run(cut).changes;
      const b = this.#stmt('DELETE FROM handshake_responses WHERE created_at < ?').run(cut).changes;
      return a + b;
    });
    return prune.immediate(createdBefore);
  }

  applyTaskEvidence(evidence: TaskEvidence): boolean {
    const apply = this.#db.transaction((e: TaskEvidence): boolean => {
      const added = this.#stmt(
        'INSERT OR IGNORE INTO task_evidence (task_id, submitter, executor, kind, submitter_delta, executor_delta, applied_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
      ).run(e.taskId, e.submitter, e.executor, e.kind, e.submitterDelta, e.executorDelta, e.at);
      if (added.changes === 0) return false;
      const bump = this.#stmt('UPDATE nodes SET polo_score = polo_score + ? WHERE id = ?');
      if (e.submitterDelta !== 0) bump.run(e.submitterDelta, e.submitter);
      if (e.executorDelta !== 0) bump.run(e.executorDelta, e.executor);
      if (e.kind === 'receipt')
        this.#stmt('DELETE FROM task_acceptances WHERE task_id = ? AND submitter = ? AND executor = ?').run(
          e.taskId,
          e.submitter,
          e.executor,
        );
      return true;
    });
    return apply.immediate(evidence);
  }

  recordTaskAcceptance(a: TaskAcceptance, maxOpen: number): 'recorded' | 'known' | 'full' {
    const record = this.#db.transaction((): 'recorded' | 'known' | 'full' => {
      if (this.getTaskAcceptance(a.taskId, a.submitter, a.executor) !== undefined) return 'known';
      const open =
        this.#stmt<[number], { n: number }>('SELECT COUNT(*) AS n FROM task_acceptances WHERE executor = ?').get(
          a.executor,
        )?.n ?? 0;
      if (open >= maxOpen) return 'full';
      this.#stmt('INSERT INTO task_acceptances (task_id, submitter, executor, seen_at) VALUES (?, ?, ?, ?)').run(
        a.taskId,
        a.submitter,
        a.executor,
        a.seenAt,
      );
      return 'recorded';
    });
    return record.immediate();
  }

  getTaskAcceptance(taskId: string, submitter: number, executor: number): TaskAcceptance | undefined {
    const row = this.#stmt<[string, number, number], { seen_at: number }>(
      'SELECT seen_at FROM task_acceptances WHERE task_id = ? AND submitter = ? AND executor = ?',
    ).get(taskId, submitter, executor);
    return row === undefined ? undefined : { taskId, submitter, executor, seenAt: row.seen_at };
  }

  pruneTaskAcceptances(seenBefore: number): number {
    return this.#stmt('DELETE FROM task_acceptances WHERE seen_at < ?').run(seenBefore).changes;
  }

  receiptHistory(submitter: number, executor: number, since: number): ReceiptHistory {
    const pair = this.#stmt<[number, number, number, number, number], { n: number }>(
      "SELECT COUNT(*) AS n FROM task_evidence WHERE kind = 'receipt' AND applied_at >= ? AND ((submitter = ? AND executor = ?) OR (submitter = ? AND executor = ?))",
    ).get(since, submitter, executor, executor, submitter);
    const gain = this.#stmt<[number, number], { g: number | null }>(
      "SELECT SUM(executor_delta) AS g FROM task_evidence WHERE kind = 'receipt' AND executor = ? AND applied_at >= ?",
    ).get(executor, since);
    return { pairReceipts: pair?.n ?? 0, executorGain: gain?.g ?? 0 };
  }

  exportState(): StoreContents {
    return exportSqliteState(this.#db);
  }

  replaceState(contents: StoreContents): void {
    replaceSqliteState(this.#db, contents);
  }

  upsertBeacon(beacon: BeaconRecord): void {
    this.#stmt(
      'INSERT INTO beacons (id, addr, expires_at) VALUES (?, ?, ?) ON CONFLICT (id) DO UPDATE SET addr = excluded.addr, expires_at = excluded.expires_at',
    ).run(beacon.id, beacon.addr, beacon.expiresAt);
  }

  listBeacons(now: number): BeaconRecord[] {
    return this.#stmt<[number], { id: number; addr: string; expires_at: number }>(
      'SELECT * FROM beacons WHERE expires_at > ? ORDER BY id',
    )
      .all(now)
      .map((r) => ({ id: r.id, addr: r.addr, expiresAt: r.expires_at }));
  }

  pruneBeacons(now: number): number {
    return this.#stmt('DELETE FROM beacons WHERE expires_at <= ?').run(now).changes;
  }

  listTrustPairs(): [number, number][] {
    return this.#stmt<[], { a: number; b: number }>(
      'SELECT c.from_id AS a, c.to_id AS b FROM trust_claims c JOIN trust_claims r ON r.from_id = c.to_id AND r.to_id = c.from_id WHERE c.from_id < c.to_id ORDER BY a, b',
    )
      .all()
      .map((row): [number, number] => [row.a, row.b]);
  }

  close(): void {
    this.groupCommit.commit();
    if (this.#db.open) this.#db.close();
  }
}
