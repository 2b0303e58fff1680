import type pg from 'pg';

/**
 * Versioned migrations of the PostgreSQL registry store, applied in order at start. Applied ones
 * are listed in schema_migrations; a process applies the missing ones under an advisory lock, so
 * that several processes starting at once apply each exactly once.
 */
export const MIGRATIONS: readonly { readonly version: number; readonly sql: string }[] = [
  {
    version: 1,
    sql: `
CREATE TABLE meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL);
CREATE SEQUENCE node_ids AS BIGINT MINVALUE 1 MAXVALUE 4294967295 NO CYCLE;
CREATE TABLE nodes (
  id BIGINT PRIMARY KEY,
  public_key TEXT NOT NULL CONSTRAINT nodes_public_key_unique UNIQUE,
  owner TEXT NOT NULL DEFAULT '',
  real_addr TEXT NOT NULL DEFAULT '',
  is_public BOOLEAN NOT NULL DEFAULT false,
  hostname TEXT CONSTRAINT nodes_hostname_unique UNIQUE,
  tags TEXT NOT NULL DEFAULT '[]',
  task_exec BOOLEAN NOT NULL DEFAULT false,
  polo_score BIGINT NOT NULL DEFAULT 0,
  registered BOOLEAN NOT NULL DEFAULT true,
  signs_body BOOLEAN NOT NULL DEFAULT false,
  last_seen BIGINT,
  last_proven BIGINT
);
CREATE INDEX nodes_owner ON nodes (owner) WHERE owner <> '';
CREATE TABLE trust_claims (
  from_id BIGINT NOT NULL, to_id BIGINT NOT NULL, created_at BIGINT NOT NULL,
  PRIMARY KEY (from_id, to_id)
);
CREATE TABLE handshake_requests (
  to_id BIGINT NOT NULL, from_id BIGINT NOT NULL, justification TEXT NOT NULL,
  created_at BIGINT NOT NULL, delivered BOOLEAN NOT NULL DEFAULT false,
  PRIMARY KEY (to_id, from_id)
);
CREATE TABLE handshake_responses (
  seq BIGSERIAL PRIMARY KEY,
  to_id BIGINT NOT NULL, from_id BIGINT NOT NULL, accept BOOLEAN NOT NULL, created_at BIGINT NOT NULL
);
CREATE INDEX handshake_responses_to ON handshake_responses (to_id, seq);
CREATE TABLE task_evidence (
  task_id TEXT NOT NULL, submitter BIGINT NOT NULL, executor BIGINT NOT NULL, kind TEXT NOT NULL,
  submitter_delta BIGINT NOT NULL, executor_delta BIGINT NOT NULL, applied_at BIGINT NOT NULL,
  PRIMARY KEY (task_id, submitter, executor)
);
CREATE INDEX task_evidence_executor ON task_evidence (executor, applied_at);
CREATE TABLE task_acceptances (
  task_id TEXT NOT NULL, submitter BIGINT NOT NULL, executor BIGINT NOT NULL, seen_at BIGINT NOT NULL,
  PRIMARY KEY (task_id, submitter, executor)
);
CREATE INDEX task_acceptances_executor ON task_acceptances (executor);
CREATE TABLE beacons (id BIGINT PRIMARY KEY, addr TEXT NOT NULL, expires_at BIGINT NOT NULL);
CREATE TABLE signed_at_marks (
  public_key TEXT NOT NULL, type TEXT NOT NULL, signed_at BIGINT NOT NULL,
  PRIMARY KEY (public_key, type)
);
`,
  },
  {
    // Every change of a node's record (liveness times aside) gets a new version and is announced
    // on pilot_node as '<id>:<version>' at commit; a TRUNCATE or DELETE announces 'reset'. Each
    // process keeps the records it read current with it (postgres-node-view.ts).
    version: 2,
    sql: `
CREATE SEQUENCE node_versions AS BIGINT;
ALTER TABLE nodes ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
CREATE FUNCTION nodes_versioned() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.version := nextval('node_versions');
  PERFORM pg_notify('pilot_node', NEW.id || ':' || NEW.version);
  RETURN NEW;
END $$;
CREATE FUNCTION nodes_reset() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('pilot_node', 'reset');
  RETURN NULL;
END $$;
CREATE TRIGGER nodes_inserted BEFORE INSERT ON nodes FOR EACH ROW EXECUTE FUNCTION nodes_versioned();
CREATE TRIGGER nodes_updated BEFORE UPDATE ON nodes FOR EACH ROW
  WHEN ((OLD.id, OLD.public_key, OLD.owner, OLD.real_addr, OLD.is_public, OLD.hostname, OLD.tags, OLD.task_exec,
         OLD.polo_score, OLD.registered, OLD.signs_body)
        IS DISTINCT FROM
        (NEW.id, NEW.public_key, NEW.owner, NEW.real_addr, NEW.is_public, NEW.hostname, NEW.tags, NEW.task_exec,
         NEW.polo_score, NEW.registered, NEW.signs_body))
  EXECUTE FUNCTION nodes_versioned();
CREATE TRIGGER nodes_deleted AFTER DELETE OR TRUNCATE ON nodes FOR EACH STATEMENT EXECUTE FUNCTION nodes_reset();
`,
  },
  {
    // Leases of the processes that serve records from memory (postgres-lease.ts), logged so that
    // a server recovered from a crash, or a promoted standby, still knows them until they run out.
    // A new record is not announced any more (no process holds a copy of a record that did not
    // exist) and takes its version from a default rather than a trigger; nodes without a hostname
    // are left out of its index.
    version: 3,
    sql: `
CREATE TABLE registry_leases (member TEXT PRIMARY KEY, until TIMESTAMPTZ NOT NULL);
DROP TRIGGER nodes_inserted ON nodes;
ALTER TABLE nodes ALTER COLUMN version SET DEFAULT nextval('node_versions');
ALTER TABLE nodes DROP CONSTRAINT nodes_hostname_unique;
CREATE UNIQUE INDEX nodes_hostname_unique ON nodes (hostname) WHERE hostname IS NOT NULL;
`,
  },
];

/** Key of the session advisory lock held while migrating (any constant; 'pilotreg' in ASCII). */
const MIGRATION_LOCK = 0x70696c6f74726567n;

/** Applies the missing migrations; returns the versions applied by this call. */
export async function migrate(client: pg.ClientBase): Promise<number[]> {
  await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK.toString()]);
  try {
    await client.query(
      'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())',
    );
    const done = new Set(
      (await client.query<{ version: number }>('SELECT version FROM schema_migrations')).rows.map((r) => r.version),
    );
    const applied: number[] = [];
    for (const m of MIGRATIONS) {
      if (done.has(m.version)) continue;
      await client.query('BEGIN');
      try {
        await client.query(m.sql);
        await client.query('INSERT INTO schema_migrations (version) VALUES ($1)', [m.version]);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK');
        throw err;
      }
      applied.push(m.version);
    }
    return applied;
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK.toString()]);
  }
}
