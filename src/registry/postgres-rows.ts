import pg from 'pg';
import { StoreConflictError } from './store-errors.js';
import type { HandshakeRequest, HandshakeResponse, NodeRecord } from './store.js';

/** The PostgreSQL store's rows and how they map to the store's records; its type parsers and lock keys. */

export interface NodeRow {
  id: number;
  public_key: string;
  owner: string;
  real_addr: string;
  is_public: boolean;
  hostname: string | null;
  tags: string;
  task_exec: boolean;
  polo_score: number;
  registered: boolean;
  signs_body: boolean;
  last_seen: number | null;
  last_proven: number | null;
}

export interface RequestRow {
  to_id: number;
  from_id: number;
  justification: string;
  created_at: number;
  delivered: boolean;
}

export interface ResponseRow {
  seq: number;
  to_id: number;
  from_id: number;
  accept: boolean;
  created_at: number;
}

/** BIGINT columns hold u32 ids, Unix ms and scores: all within a double's exact range. */
const INT8_OID = 20;
export const TYPES: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: string) =>
    oid === INT8_OID
      ? (v: string) => Number(v)
      : pg.types.getTypeParser(oid, format as 'text')) as pg.CustomTypesConfig['getTypeParser'],
};

/** Advisory transaction-lock namespaces (one key per node id within each). */
export const LOCK_INBOX = 1n << 40n;
export const LOCK_ACCEPTANCES = 2n << 40n;
export const lockKey = (space: bigint, id: number): string => (space + BigInt(id)).toString();

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
    isPublic: row.is_public,
    hostname: row.hostname ?? '',
    tags: parseTags(row.tags),
    taskExec: row.task_exec,
    poloScore: row.polo_score,
    registered: row.registered,
    signsBody: row.signs_body,
  };
  return {
    ...node,
    ...(row.last_seen !== null ? { lastSeen: row.last_seen } : {}),
    ...(row.last_proven !== null ? { lastProven: row.last_proven } : {}),
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
  accept: r.accept,
  createdAt: r.created_at,
});

/** A unique violation becomes StoreConflictError (the handlers turn it into already_exists). */
export function conflict(err: unknown): unknown {
  if (!(err instanceof pg.DatabaseError) || err.code !== '23505') return err;
  if (err.constraint === 'nodes_hostname_unique') return new StoreConflictError('hostname', 'hostname is taken');
  if (err.constraint === 'nodes_public_key_unique') return new StoreConflictError('public_key', 'public key is taken');
  return err;
}

export const NODE_COLUMNS: Record<string, string> = {
  publicKey: 'public_key',
  owner: 'owner',
  realAddr: 'real_addr',
  isPublic: 'is_public',
  hostname: 'hostname',
  tags: 'tags',
  taskExec: 'task_exec',
  poloScore: 'polo_score',
  registered: 'registered',
  signsBody: 'signs_body',
};

export function columnValue(key: string, value: unknown): unknown {
  if (key === 'hostname') return value === '' ? null : value;
  if (key === 'tags') return JSON.stringify(value);
  if (key === 'poloScore') return Math.trunc(value as number);
  return value;
}
