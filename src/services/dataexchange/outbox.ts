import { randomUUID } from 'node:crypto';
import { lstat, readdir, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ensureDir, removeStaleTemps, writeFileAtomic } from '../../crypto/atomic-file.js';
import { pilotPaths } from '../../config/home.js';
import { dataTypeName } from '../../protocol/dataexchange.js';
import { isJsonObject, type JsonObject } from '../../protocol/json.js';

/**
 * The durable outbox, `<home>/outbox/`: `<id>.data` holds the payload, `<id>.json` the metadata;
 * the metadata is written last, so its presence marks a complete item. pilotctl and the SDK only
 * add items (enqueue); the running data-exchange service is the only one that updates, delivers,
 * deletes or expires them. Expired items move to `outbox/failed/` with a reason.
 */

export const DEFAULT_TTL_MS = 24 * 60 * 60 * 1000;
export const BACKOFF_BASE_MS = 1000;
export const BACKOFF_CAP_MS = 60_000;
/**
 * pilotctl and the SDK write into outbox/ while the daemon runs: a temp file or an item without
 * its metadata younger than this may be an enqueue in progress, and is left alone.
 */
export const LEFTOVER_AGE_MS = 10 * 60 * 1000;

export interface OutboxItem {
  /** UUID; also the idempotency key the receiver deduplicates on. */
  readonly id: string;
  /** Address text of the receiver. */
  readonly target: string;
  /** Data-exchange frame type (1 text, 2 binary, 3 json, 4 file). */
  readonly type: number;
  readonly filename?: string;
  readonly bytes: number;
  readonly createdAt: number;
  readonly expiresAt: number;
  readonly attempts: number;
  readonly nextAttemptAt: number;
  readonly lastError?: string;
}

export type DeliveryOutcome = { readonly ok: true } | { readonly ok: false; readonly error: string };

export type Transition =
  | { readonly action: 'delete' }
  | { readonly action: 'retry'; readonly item: OutboxItem }
  | { readonly action: 'expire'; readonly item: OutboxItem; readonly reason: string };

/** Delay before attempt n+1 after n failures: 1 s, 2 s, 4 s … capped. */
export function backoffMs(failures: number, capMs = BACKOFF_CAP_MS): number {
  return Math.min(capMs, BACKOFF_BASE_MS * 2 ** Math.max(0, Math.min(failures - 1, 30)));
}

/** When an item is next to be attempted, or expired if it is past its deadline by then. */
export function dueAt(item: OutboxItem): number {
  return Math.min(item.nextAttemptAt, item.expiresAt);
}

export function isDue(item: OutboxItem, now: number): boolean {
  return dueAt(item) <= now;
}

/** An item that is due but past its expiry is not attempted again. */
export function expiredBeforeAttempt(item: OutboxItem, now: number): Transition | undefined {
  if (item.expiresAt > now) return undefined;
  return {
    action: 'expire',
    item,
    reason: `expired after ${item.attempts} attempts${item.lastError ? `: ${item.lastError}` : ''}`,
  };
}

/** What happens to an item after one delivery attempt. */
export function afterAttempt(
  item: OutboxItem,
  outcome: DeliveryOutcome,
  now: number,
  capMs = BACKOFF_CAP_MS,
): Transition {
  if (outcome.ok) return { action: 'delete' };
  const attempts = item.attempts + 1;
  const next: OutboxItem = {
    ...item,
    attempts,
    lastError: outcome.error,
    nextAttemptAt: now + backoffMs(attempts, capMs),
  };
  if (next.nextAttemptAt >= item.expiresAt) {
    return { action: 'expire', item: next, reason: `expired after ${attempts} attempts: ${outcome.error}` };
  }
  return { action: 'retry', item: next };
}

function toJson(item: OutboxItem, reason?: string): JsonObject {
  const o: JsonObject = {
    id: item.id,
    target: item.target,
    type: item.type,
    bytes: item.bytes,
    created_at: item.createdAt,
    expires_at: item.expiresAt,
    attempts: item.attempts,
    next_attempt_at: item.nextAttemptAt,
  };
  if (item.filename !== undefined) o.filename = item.filename;
  if (item.lastError !== undefined) o.last_error = item.lastError;
  if (reason !== undefined) o.reason = reason;
  return o;
}

function fromJson(v: unknown): OutboxItem | undefined {
  if (!isJsonObject(v)) return undefined;
  const { id, target, type, bytes, created_at, expires_at, attempts, next_attempt_at, filename, last_error } = v;
  if (typeof id !== 'string' || typeof target !== 'string' || typeof type !== 'number' || typeof bytes !== 'number')
    return undefined;
  if (
    typeof created_at !== 'number' ||
    typeof expires_at !== 'number' ||
    typeof attempts !== 'number' ||
    typeof next_attempt_at !== 'number'
  )
    return undefined;
  return {
    id,
    target,
    type,
    bytes,
    createdAt: created_at,
    expiresAt: expires_at,
    attempts,
    nextAttemptAt: next_attempt_at,
    ...(typeof filename === 'string' ? { filename } : {}),
    ...(typeof last_error === 'string' ? { lastError: last_error } : {}),
  };
}

const ID_RE = /^[0-9a-f-]{36}$/;

export class Outbox {
  readonly dir: string;
  readonly failedDir: string;

  constructor(home: string) {
    this.dir = pilotPaths(home).outbox;
    this.failedDir = join(this.dir, 'failed');
  }

  /** Adds an item durably; delivery is up to the daemon's data-exchange service. */
  async enqueue(
    entry: { target: string; type: number; data: Uint8Array; filename?: string; ttlMs?: number },
    now = Date.now(),
  ): Promise<OutboxItem> {
    const item: OutboxItem = {
      id: randomUUID(),
      target: entry.target,
      type: entry.type,
      bytes: entry.data.length,
      createdAt: now,
      expiresAt: now + (entry.ttlMs ?? DEFAULT_TTL_MS),
      attempts: 0,
      nextAttemptAt: now,
      ...(entry.filename !== undefined ? { filename: entry.filename } : {}),
    };
    await ensureDir(this.dir);
    await writeFileAtomic(join(this.dir, `${item.id}.data`), entry.data);
    await writeFileAtomic(join(this.dir, `${item.id}.json`), JSON.stringify(toJson(item)));
    return item;
  }

  async list(): Promise<OutboxItem[]> {
    const names = await readdir(this.dir).catch(() => [] as string[]);
    const items: OutboxItem[] = [];
    for (const name of names.sort()) {
      if (!name.endsWith('.json') || !ID_RE.test(name.slice(0, -5))) continue;
      const item = await this.read(name.slice(0, -5));
      if (item) items.push(item);
    }
    return items.sort((a, b) => a.createdAt - b.createdAt);
  }

  async read(id: string): Promise<OutboxItem | undefined> {
    const text = await readFile(join(this.dir, `${id}.json`), 'utf8').catch(() => undefined);
    if (text === undefined) return undefined;
    try {
      return fromJson(JSON.parse(text));
    } catch {
      return undefined;
    }
  }

  async data(id: string): Promise<Buffer> {
    return readFile(join(this.dir, `${id}.data`));
  }

  async update(item: OutboxItem): Promise<void> {
    await writeFileAtomic(join(this.dir, `${item.id}.json`), JSON.stringify(toJson(item)));
  }

  async remove(id: string): Promise<void> {
    await rm(join(this.dir, `${id}.json`), { force: true });
    await rm(join(this.dir, `${id}.data`), { force: true });
  }

  /**
   * Removes what a crash left: temp files of interrupted writes in outbox/ and failed/, and in
   * outbox/ the `<id>.data` of an enqueue that died before writing its `<id>.json` (an item is
   * complete only with its metadata). In outbox/ only files older than LEFTOVER_AGE_MS. Run by
   * the data-exchange service at start-up. Returns the paths removed.
   */
  async removeLeftovers(now = Date.now()): Promise<string[]> {
    const removed = (await removeStaleTemps(this.dir, { olderThanMs: LEFTOVER_AGE_MS, now })).map((n) =>
      join(this.dir, n),
    );
    for (const n of await removeStaleTemps(this.failedDir)) removed.push(join(this.failedDir, n));
    const names = new Set(await readdir(this.dir).catch(() => [] as string[]));
    for (const name of names) {
      const id = name.slice(0, -'.data'.length);
      if (!name.endsWith('.data') || !ID_RE.test(id) || names.has(`${id}.json`)) continue;
      const path = join(this.dir, name);
      const st = await lstat(path).catch(() => undefined);
      if (!st?.isFile() || now - st.mtimeMs < LEFTOVER_AGE_MS) continue;
      // The metadata may have appeared since the listing: check again right before removing.
      if (
        await lstat(join(this.dir, `${id}.json`)).then(
          () => true,
          () => false,
        )
      )
        continue;
      await rm(path, { force: true });
      removed.push(path);
    }
    return removed;
  }

  /** Moves an item aside into failed/, its metadata carrying the reason. */
  async expire(item: OutboxItem, reason: string): Promise<void> {
    await ensureDir(this.failedDir);
    await rename(join(this.dir, `${item.id}.data`), join(this.failedDir, `${item.id}.data`)).catch(() => undefined);
    await writeFileAtomic(join(this.failedDir, `${item.id}.json`), JSON.stringify(toJson(item, reason)));
    await rm(join(this.dir, `${item.id}.json`), { force: true });
  }
}

/** `pilotctl outbox` row. */
export function outboxRow(item: OutboxItem): JsonObject {
  const row: JsonObject = {
    attempts: item.attempts,
    bytes: item.bytes,
    created_at: new Date(item.createdAt).toISOString(),
    expires_at: new Date(item.expiresAt).toISOString(),
    id: item.id,
    next_attempt_at: new Date(item.nextAttemptAt).toISOString(),
    target: item.target,
    type: dataTypeName(item.type),
  };
  if (item.filename !== undefined) row.filename = item.filename;
  if (item.lastError !== undefined) row.last_error = item.lastError;
  return row;
}
