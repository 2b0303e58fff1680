import type pg from 'pg';
import type { PendingHandshakeRequest, StoreContents, TaskAcceptance, TrustClaim } from './store.js';
import type { RequestRow, ResponseRow } from './postgres-rows.js';
import { type EvidenceRow, type NodeRow, toEvidence, toNode, toRequest, toResponse } from './store-rows.js';

/**
 * The PostgreSQL store's whole contents, as snapshots and `pilot-registry -import` move them:
 * everything but the beacons, read in one transaction started by the caller (repeatable read).
 */
export async function exportPostgresState(c: pg.PoolClient): Promise<StoreContents> {
  const all = async <R extends pg.QueryResultRow>(text: string): Promise<R[]> => (await c.query<R>(text)).rows;
  const meta = await all<{ key: string; value: number }>('SELECT key, value FROM meta');
  const seq = (await all<{ last_value: number; is_called: boolean }>('SELECT last_value, is_called FROM node_ids'))[0];
  const nodes = await all<NodeRow>('SELECT * FROM nodes ORDER BY id');
  const maxId = nodes.reduce((m, n) => Math.max(m, n.id), 0);
  const nextFromSeq = seq === undefined ? 1 : seq.is_called ? seq.last_value + 1 : seq.last_value;
  return {
    nextNodeId: Math.max(nextFromSeq, maxId + 1),
    backboneCreatedAt: meta.find((m) => m.key === 'backbone_created')?.value ?? 0,
    nodes: nodes.map((n) => {
      const { lastSeen: _s, lastProven: _p, ...rest } = toNode(n);
      return rest;
    }),
    trustClaims: (
      await all<{ from_id: number; to_id: number; created_at: number }>(
        'SELECT * FROM trust_claims ORDER BY from_id, to_id',
      )
    ).map((r): TrustClaim => ({ from: r.from_id, to: r.to_id, createdAt: r.created_at })),
    handshakeRequests: (
      await all<RequestRow>('SELECT * FROM handshake_requests ORDER BY to_id, created_at, from_id')
    ).map((r): PendingHandshakeRequest => ({ ...toRequest(r), delivered: r.delivered })),
    handshakeResponses: (await all<ResponseRow>('SELECT * FROM handshake_responses ORDER BY to_id, seq')).map(
      toResponse,
    ),
    taskEvidence: (
      await all<EvidenceRow>('SELECT * FROM task_evidence ORDER BY applied_at, task_id, submitter, executor')
    ).map(toEvidence),
    taskAcceptances: (
      await all<{ task_id: string; submitter: number; executor: number; seen_at: number }>(
        'SELECT * FROM task_acceptances ORDER BY seen_at, task_id, submitter, executor',
      )
    ).map(
      (r): TaskAcceptance => ({
        taskId: r.task_id,
        submitter: r.submitter,
        executor: r.executor,
        seenAt: r.seen_at,
      }),
    ),
  };
}

/** Empties the replaced tables and fills them with `contents`, in the caller's transaction. */
export async function replacePostgresState(c: pg.PoolClient, contents: StoreContents): Promise<void> {
  await c.query(
    'TRUNCATE nodes, trust_claims, handshake_requests, handshake_responses, task_evidence, task_acceptances, signed_at_marks',
  );
  let maxId = 0;
  for (const n of contents.nodes) {
    await c.query(
      'INSERT INTO nodes (id, public_key, owner, real_addr, is_public, hostname, tags, task_exec, polo_score, registered, signs_body) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)',
      [
        n.id,
        n.publicKey,
        n.owner,
        n.realAddr,
        n.isPublic,
        n.hostname === '' ? null : n.hostname,
        JSON.stringify(n.tags),
        n.taskExec,
        Math.trunc(n.poloScore),
        n.registered,
        n.signsBody,
      ],
    );
    maxId = Math.max(maxId, n.id);
  }
  for (const t of contents.trustClaims)
    await c.query('INSERT INTO trust_claims (from_id, to_id, created_at) VALUES ($1, $2, $3)', [
      t.from,
      t.to,
      t.createdAt,
    ]);
  for (const r of contents.handshakeRequests)
    await c.query(
      'INSERT INTO handshake_requests (to_id, from_id, justification, created_at, delivered) VALUES ($1, $2, $3, $4, $5)',
      [r.toNodeId, r.fromNodeId, r.justification, r.createdAt, r.delivered],
    );
  for (const r of contents.handshakeResponses)
    await c.query('INSERT INTO handshake_responses (to_id, from_id, accept, created_at) VALUES ($1, $2, $3, $4)', [
      r.toNodeId,
      r.fromNodeId,
      r.accept,
      r.createdAt,
    ]);
  for (const e of contents.taskEvidence)
    await c.query(
      'INSERT INTO task_evidence (task_id, submitter, executor, kind, submitter_delta, executor_delta, applied_at) VALUES ($1, $2, $3, $4, $5, $6, $7)',
      [e.taskId, e.submitter, e.executor, e.kind, e.submitterDelta, e.executorDelta, e.at],
    );
  for (const a of contents.taskAcceptances)
    await c.query('INSERT INTO task_acceptances (task_id, submitter, executor, seen_at) VALUES ($1, $2, $3, $4)', [
      a.taskId,
      a.submitter,
      a.executor,
      a.seenAt,
    ]);
  // setval(.., false): the next nextval returns exactly this id.
  await c.query("SELECT setval('node_ids', $1, false)", [Math.max(contents.nextNodeId, maxId + 1, 1)]);
  await c.query(
    "INSERT INTO meta (key, value) VALUES ('backbone_created', $1) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
    [Math.trunc(contents.backboneCreatedAt)],
  );
}
