import type Database from 'better-sqlite3';
import type { PendingHandshakeRequest, StoreContents, TaskAcceptance, TrustClaim } from './store.js';
import { REPLACED_TABLES } from './sqlite-schema.js';
import {
  type EvidenceRow,
  type NodeRow,
  type RequestRow,
  type ResponseRow,
  toEvidence,
  toNode,
  toRequest,
  toResponse,
} from './store-rows.js';

/**
 * The SQLite store's whole contents, as snapshots and `pilot-registry -import` move them:
 * everything but the beacons, read in one transaction.
 */
export function exportSqliteState(db: Database.Database): StoreContents {
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
      .map(toEvidence);
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

/** Empties the replaced tables and fills them with `contents`, in one transaction. */
export function replaceSqliteState(db: Database.Database, contents: StoreContents): void {
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
