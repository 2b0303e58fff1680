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
  PendingHandshakeRequest,
  SyncRegistryStore,
  StoreContents,
  TaskEvidence,
  TrustClaim,
} from './store.js';
import { SqliteGroupCommit } from './sqlite-group-commit.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('next_node', 1);
CREATE TABLE IF NOT EXISTS nodes (
  id INTEGER PRIMARY KEY,
  public_key TEXT NOT NULL UNIQUE,
  owner TEXT NOT NULL DEFAULT '',
  real_addr TEXT NOT NULL DEFAULT '',
  is_public INTEGER NOT NULL DEFAULT 0,
  hostname TEXT UNIQUE,
  tags TEXT NOT NULL DEFAULT '[]',
  task_exec INTEGER NOT NULL DEFAULT 0,
  polo_score INTEGER NOT NULL DEFAULT 0,
  registered INTEGER NOT NULL DEFAULT 1,
  signs_body INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS nodes_owner ON nodes (owner) WHERE owner <> '';
CREATE TABLE IF NOT EXISTS trust_claims (
  from_id INTEGER NOT NULL, to_id INTEGER NOT NULL, created_at INTEGER NOT NULL,
  PRIMARY KEY (from_id, to_id)
);
CREATE TABLE IF NOT EXISTS handshake_requests (
  to_id INTEGER NOT NULL, from_id INTEGER NOT NULL, justification TEXT NOT NULL,
  created_at INTEGER NOT NULL, delivered INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (to_id, from_id)
);
CREATE TABLE IF NOT EXISTS handshake_responses (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  to_id INTEGER NOT NULL, from_id INTEGER NOT NULL, accept INTEGER NOT NULL, created_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS handshake_responses_to ON handshake_responses (to_id, seq);
CREATE TABLE IF NOT EXISTS task_evidence (
  task_id TEXT NOT NULL, submitter INTEGER NOT NULL, executor INTEGER NOT NULL, kind TEXT NOT NULL,
  submitter_delta INTEGER NOT NULL, executor_delta INTEGER NOT NULL, applied_at INTEGER NOT NULL,
  PRIMARY KEY (task_id, submitter, executor)
);
CREATE INDEX IF NOT EXISTS task_evidence_executor ON task_evidence (executor, applied_at);
CREATE TABLE IF NOT EXISTS task_acceptances (
  task_id TEXT NOT NULL, submitter INTEGER NOT NULL, executor INTEGER NOT NULL, seen_at INTEGER NOT NULL,
  PRIMARY KEY (task_id, submitter, executor)
);
CREATE INDEX IF NOT EXISTS task_acceptances_executor ON task_acceptances (executor);
CREATE TABLE IF NOT EXISTS beacons (id INTEGER PRIMARY KEY, addr TEXT NOT NULL, expires_at INTEGER NOT NULL);
`;

interface NodeRow {
  id: number;
  public_key: string;
  owner: string;
  real_addr: string;
  is_public: number;
  hostname: string | null;
  tags: string;
  task_exec: number;
  polo_score: number;
  registered: number;
  signs_body: number;
}

interface RequestRow {
  to_id: number;
  from_id: number;
  justification: string;
  created_at: number;
}

interface ResponseRow {
  to_id: number;
  from_id: number;
  accept: number;
  created_at: number;
}

interface EvidenceRow {
  task_id: string;
  submitter: number;
  executor: number;
  kind: string;
  submitter_delta: number;
  executor_delta: number;
  applied_at: number;
}

/** Tables `replaceState` empties and fills (beacons are volatile and stay). */
const REPLACED_TABLES = [
  'nodes',
  'trust_claims',
  'handshake_requests',
  'handshake_responses',
  'task_evidence',
  'task_acceptances',
] as const;

function parseTags(text: string): string[] {
  try {
    const value: unknown = JSON.parse(text);
    return Array.isArray(value) ? value.filter((t): t is string => typeof t === 'string') : [];
  } catch {
    return [];
  }
}

function toNode(row: NodeRow): NodeRecord {
  return {
    id: row.id,
    publicKey: row.public_key,
    owner: row.owner,
    realAddr: row.real_addr,
    isPublic: row.is_public !== 0,
    hostname: row.hostname ?? '',
    tags: parseTags(row.tags),
    taskExec: row.task_exec !== 0,
    poloScore: row.polo_score,
    registered: row.registered !== 0,
    signsBody: row.signs_body !== 0,
  };
}

const toRequest = (r: RequestRow): HandshakeRequest => ({
  fromNodeId: r.from_id,
  toNodeId: r.to_id,
  justification: r.justification,
  createdAt: r.created_at,
});

const toResponse = (r: ResponseRow): HandshakeResponse => ({
  fromNodeId: r.from_id,
  toNodeId: r.to_id,
  accept: r.accept !== 0,
  createdAt: r.created_at,
});

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
    this.#migrate();
    this.#stmt("INSERT OR IGNORE INTO meta (key, value) VALUES ('backbone_created', ?)").run(Date.now());
  }

  /** Columns added after the first release of the schema, for stores created before them. */
  #migrate(): void {
    const columns = new Set(
      this.#db
        .prepare<[], { name: string }>('PRAGMA table_info(nodes)')
        .all()
        .map((c) => c.name),
    );
    if (!columns.has('signs_body')) this.#db.exec('ALTER TABLE nodes ADD COLUMN signs_body INTEGER NOT NULL DEFAULT 0');
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
    const db = this.#db;
    const read = db.transaction((): StoreContents => {
      const meta = (key: string): number | undefined =>
        db.prepare<[string], { value: number }>('SELECT value FROM meta WHERE key = ?').get(key)?.value;
      const trustClaims = db
        .prepare<[], { from_id: number; to_id: number; created_at: number }>(
          'SELECT * FROM trust_claims ORDER BY from_id, to_id',
        )
        .all()
        .map((r): TrustClaim => ({ from: r.from_id, to: r.to_id, createdAt: r.created_at }));
      const handshakeRequests = db
        .prepare<[], RequestRow & { delivered: number }>(
          'SELECT * FROM handshake_requests ORDER BY to_id, created_at, from_id',
        )
        .all()
        .map((r): PendingHandshakeRequest => ({ ...toRequest(r), delivered: r.delivered !== 0 }));
      const taskEvidence = db
        .prepare<[], EvidenceRow>('SELECT * FROM task_evidence ORDER BY applied_at, task_id, submitter, executor')
        .all()
        .map(
          (r): TaskEvidence => ({
            taskId: r.task_id,
            kind: r.kind === 'expiry' ? 'expiry' : 'receipt',
            submitter: r.submitter,
            executor: r.executor,
            submitterDelta: r.submitter_delta,
            executorDelta: r.executor_delta,
            at: r.applied_at,
          }),
        );
      const taskAcceptances = db
        .prepare<[], { task_id: string; submitter: number; executor: number; seen_at: number }>(
          'SELECT * FROM task_acceptances ORDER BY seen_at, task_id, submitter, executor',
        )
        .all()
        .map(
          (r): TaskAcceptance => ({
            taskId: r.task_id,
            submitter: r.submitter,
            executor: r.executor,
            seenAt: r.seen_at,
          }),
        );
      return {
        nextNodeId: meta('next_node') ?? 1,
        backboneCreatedAt: meta('backbone_created') ?? 0,
        nodes: db.prepare<[], NodeRow>('SELECT * FROM nodes ORDER BY id').all().map(toNode),
        trustClaims,
        handshakeRequests,
        handshakeResponses: db
          .prepare<[], ResponseRow>('SELECT * FROM handshake_responses ORDER BY to_id, seq')
          .all()
          .map(toResponse),
        taskEvidence,
        taskAcceptances,
      };
    });
    return read();
  }

  replaceState(contents: StoreContents): void {
    const db = this.#db;
    const insertNode = db.prepare(
      'INSERT INTO nodes (id, public_key, owner, real_addr, is_public, hostname, tags, task_exec, polo_score, registered, signs_body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    );
    const insertClaim = db.prepare('INSERT INTO trust_claims (from_id, to_id, created_at) VALUES (?, ?, ?)');
    const insertRequest = db.prepare(
      'INSERT INTO handshake_requests (to_id, from_id, justification, created_at, delivered) VALUES (?, ?, ?, ?, ?)',
    );
    const insertResponse = db.prepare(
      'INSERT INTO handshake_responses (to_id, from_id, accept, created_at) VALUES (?, ?, ?, ?)',
    );
    const insertEvidence = db.prepare(
      'INSERT INTO task_evidence (task_id, submitter, executor, kind, submitter_delta, executor_delta, applied_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
    );
    const insertAcceptance = db.prepare(
      'INSERT INTO task_acceptances (task_id, submitter, executor, seen_at) VALUES (?, ?, ?, ?)',
    );
    const setMeta = db.prepare(
      'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
    );
    const replace = db.transaction((c: StoreContents): void => {
      for (const table of REPLACED_TABLES) db.exec(`DELETE FROM ${table}`);
      let maxId = 0;
      for (const n of c.nodes) {
        insertNode.run(
          n.id,
          n.publicKey,
          n.owner,
          n.realAddr,
          n.isPublic ? 1 : 0,
          n.hostname === '' ? null : n.hostname,
          JSON.stringify(n.tags),
          n.taskExec ? 1 : 0,
          Math.trunc(n.poloScore),
          n.registered ? 1 : 0,
          n.signsBody ? 1 : 0,
        );
        maxId = Math.max(maxId, n.id);
      }
      for (const t of c.trustClaims) insertClaim.run(t.from, t.to, t.createdAt);
      for (const r of c.handshakeRequests)
        insertRequest.run(r.toNodeId, r.fromNodeId, r.justification, r.createdAt, r.delivered ? 1 : 0);
      for (const r of c.handshakeResponses) insertResponse.run(r.toNodeId, r.fromNodeId, r.accept ? 1 : 0, r.createdAt);
      for (const e of c.taskEvidence) {
        insertEvidence.run(e.taskId, e.submitter, e.executor, e.kind, e.submitterDelta, e.executorDelta, e.at);
      }
      for (const a of c.taskAcceptances) insertAcceptance.run(a.taskId, a.submitter, a.executor, a.seenAt);
      setMeta.run('next_node', Math.max(c.nextNodeId, maxId + 1, 1));
      setMeta.run('backbone_created', Math.trunc(c.backboneCreatedAt));
    });
    replace.immediate(contents);
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
