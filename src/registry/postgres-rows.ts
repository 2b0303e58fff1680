import pg from 'pg';
import { StoreConflictError } from './store-errors.js';
import type { RequestRow as SharedRequestRow, ResponseRow as SharedResponseRow } from './store-rows.js';

/** The PostgreSQL store's own row fields, its type parsers and lock keys (shared rows: store-rows.ts). */

export interface RequestRow extends SharedRequestRow {
  delivered: boolean;
}

export interface ResponseRow extends SharedResponseRow {
  seq: number;
}

/** BIGINT columns hold u32 ids, Unix ms and scores: all within a double's exact range. */
const INT8_OID = 20;
export const TYPES: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: string) =>
    oid === INT8_OID
      ? (v: string) => Number(v)
      : pg.types.getTypeParser(oid, format as 'text')) as pg.CustomTypesConfig['getTypeParser'],
};

/**
 * Every execution of a prepared statement is planned for its own values: a generic plan made while
 * a table was small (a new database filling up before autovacuum analyzes it) would keep scanning
 * the whole table for a batch of keys long after it grew.
 */
export const SESSION_OPTIONS = '-c plan_cache_mode=force_custom_plan';

/**
 * The connections of the batched statements (node records by key and id, inserts, replay marks,
 * liveness times) plan each statement once: they find rows by key only, so with sequential scans
 * ruled out their one generic plan is right at any table size, and planning a custom plan per
 * execution was most of a batch's cost in the server.
 */
export const BATCH_OPTIONS = '-c plan_cache_mode=force_generic_plan -c enable_seqscan=off';

/** Advisory transaction-lock namespaces (one key per node id within each). */
export const LOCK_INBOX = 1n << 40n;
export const LOCK_ACCEPTANCES = 2n << 40n;
export const lockKey = (space: bigint, id: number): string => (space + BigInt(id)).toString();

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
