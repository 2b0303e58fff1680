import type Database from 'better-sqlite3';

/** The SQLite store's tables (their rows map to records in store-rows.ts). */
export const SCHEMA = `
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

/** Tables `replaceState` empties and fills (beacons are volatile and stay). */
export const REPLACED_TABLES = [
  'nodes',
  'trust_claims',
  'handshake_requests',
  'handshake_responses',
  'task_evidence',
  'task_acceptances',
] as const;

/** Columns added after the first release of the schema, for stores created before them. */
export function migrateSqlite(db: Database.Database): void {
  const columns = new Set(
    db
      .prepare<[], { name: string }>('PRAGMA table_info(nodes)')
      .all()
      .map((c) => c.name),
  );
  if (!columns.has('signs_body')) db.exec('ALTER TABLE nodes ADD COLUMN signs_body INTEGER NOT NULL DEFAULT 0');
}
