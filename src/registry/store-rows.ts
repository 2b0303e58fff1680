import type { HandshakeRequest, HandshakeResponse, NodeRecord, TaskEvidence } from './store.js';

/**
 * Rows of the store's tables as both stores read them (one schema: SQLite gives booleans as 0/1,
 * PostgreSQL as booleans), and the records they map to.
 */

type Flag = boolean | number;

export interface NodeRow {
  id: number;
  public_key: string;
  owner: string;
  real_addr: string;
  is_public: Flag;
  hostname: string | null;
  tags: string;
  task_exec: Flag;
  polo_score: number;
  registered: Flag;
  signs_body: Flag;
  /** Only where liveness is stored with the node (PostgreSQL, shared by several processes). */
  last_seen?: number | null;
  last_proven?: number | null;
}

export interface RequestRow {
  to_id: number;
  from_id: number;
  justification: string;
  created_at: number;
}

export interface ResponseRow {
  to_id: number;
  from_id: number;
  accept: Flag;
  created_at: number;
}

export interface EvidenceRow {
  task_id: string;
  submitter: number;
  executor: number;
  kind: string;
  submitter_delta: number;
  executor_delta: number;
  applied_at: number;
}

const flag = (v: Flag): boolean => (typeof v === 'number' ? v !== 0 : v);

/** The tags column: a JSON array of strings; anything else reads as no tags. */
function parseTags(text: string): string[] {
  try {
    const value: unknown = JSON.parse(text);
    return Array.isArray(value) ? value.filter((t): t is string => typeof t === 'string') : [];
  } catch {
    return [];
  }
}

export function toNode(row: NodeRow): NodeRecord {
  const node: NodeRecord = {
    id: row.id,
    publicKey: row.public_key,
    owner: row.owner,
    realAddr: row.real_addr,
    isPublic: flag(row.is_public),
    hostname: row.hostname ?? '',
    tags: parseTags(row.tags),
    taskExec: flag(row.task_exec),
    poloScore: row.polo_score,
    registered: flag(row.registered),
    signsBody: flag(row.signs_body),
  };
  return {
    ...node,
    ...(row.last_seen !== undefined && row.last_seen !== null ? { lastSeen: row.last_seen } : {}),
    ...(row.last_proven !== undefined && row.last_proven !== null ? { lastProven: row.last_proven } : {}),
  };
}

export const toRequest = (r: RequestRow): HandshakeRequest => ({
  fromNodeId: r.from_id,
  toNodeId: r.to_id,
  justification: r.justification,
  createdAt: r.created_at,
});

export const toResponse = (r: ResponseRow): HandshakeResponse => ({
  fromNodeId: r.from_id,
  toNodeId: r.to_id,
  accept: flag(r.accept),
  createdAt: r.created_at,
});

export const toEvidence = (r: EvidenceRow): TaskEvidence => ({
  taskId: r.task_id,
  kind: r.kind === 'expiry' ? 'expiry' : 'receipt',
  submitter: r.submitter,
  executor: r.executor,
  submitterDelta: r.submitter_delta,
  executorDelta: r.executor_delta,
  at: r.applied_at,
});
