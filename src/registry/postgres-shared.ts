import pg from 'pg';
import type { Logger } from '../log.js';
import type { SharedRegistryState } from './store.js';

/** The notification channel that carries handshake wake-ups (payload: the node id). */
const CHANNEL = 'pilot_handshake';
/** Backoff of the listening connection's reconnects after a failure. */
const RELISTEN_MIN_MS = 200;
const RELISTEN_MAX_MS = 5000;

/**
 * What registry processes sharing one PostgreSQL database share beyond the tables: replay
 * high-water marks (a conditional upsert decides which process accepted a `signed_at` first),
 * liveness times (written in batches; a time never moves backwards) and handshake wake-ups
 * (NOTIFY on one process, LISTEN on every process: the database pushes, nobody polls).
 */
export class PostgresSharedState implements SharedRegistryState {
  readonly #pool: pg.Pool;
  readonly #config: pg.ClientConfig;
  readonly #log: Logger | undefined;
  readonly #listeners: ((nodeId: number) => void)[] = [];
  #listener: pg.Client | undefined;
  #retry: NodeJS.Timeout | undefined;
  #backoff = RELISTEN_MIN_MS;
  #closed = false;

  private constructor(pool: pg.Pool, config: pg.ClientConfig, log: Logger | undefined) {
    this.#pool = pool;
    this.#config = config;
    this.#log = log;
  }

  static async start(pool: pg.Pool, config: pg.ClientConfig, log?: Logger): Promise<PostgresSharedState> {
    const shared = new PostgresSharedState(pool, config, log);
    await shared.#listen();
    return shared;
  }

  async advanceSignedAt(publicKey: string, type: string, at: number): Promise<boolean> {
    const result = await this.#pool.query({
      name: 'advance_signed_at',
      text: `INSERT INTO signed_at_marks (public_key, type, signed_at) VALUES ($1, $2, $3)
             ON CONFLICT (public_key, type) DO UPDATE SET signed_at = EXCLUDED.signed_at
             WHERE signed_at_marks.signed_at < EXCLUDED.signed_at`,
      values: [publicKey, type, at],
    });
    return (result.rowCount ?? 0) > 0;
  }

  async pruneSignedAt(before: number): Promise<number> {
    const result = await this.#pool.query('DELETE FROM signed_at_marks WHERE signed_at < $1', [before]);
    return result.rowCount ?? 0;
  }

  async recordLiveness(seen: ReadonlyMap<number, number>, proven: ReadonlyMap<number, number>): Promise<void> {
    // Ids in ascending order, so that two processes writing overlapping batches never deadlock.
    const ids = [...new Set([...seen.keys(), ...proven.keys()])].sort((a, b) => a - b);
    if (ids.length === 0) return;
    await this.#pool.query({
      name: 'record_liveness',
      text: `UPDATE nodes SET last_seen = GREATEST(nodes.last_seen, v.seen), last_proven = GREATEST(nodes.last_proven, v.proven)
             FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS v(id, seen, proven) WHERE nodes.id = v.id`,
      values: [ids, ids.map((id) => seen.get(id) ?? null), ids.map((id) => proven.get(id) ?? null)],
    });
  }

  async announceHandshake(nodeId: number): Promise<void> {
    await this.#pool.query({ name: 'announce', text: 'SELECT pg_notify($1, $2)', values: [CHANNEL, String(nodeId)] });
  }

  onHandshake(listener: (nodeId: number) => void): void {
    this.#listeners.push(listener);
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retry);
    const listener = this.#listener;
    this.#listener = undefined;
    await listener?.end().catch(() => undefined);
  }

  async #listen(): Promise<void> {
    const client = new pg.Client(this.#config);
    client.on('notification', (msg) => {
      const id = Number(msg.payload);
      if (msg.channel !== CHANNEL || !Number.isSafeInteger(id)) return;
      for (const listener of this.#listeners) listener(id);
    });
    client.on('error', (err) => this.#lost(client, err));
    client.on('end', () => this.#lost(client, new Error('connection ended')));
    await client.connect();
    await client.query(`LISTEN ${CHANNEL}`);
    this.#listener = client;
    this.#backoff = RELISTEN_MIN_MS;
  }

  /** The listening connection failed: wake-ups sent meanwhile are lost (daemons also poll), so reconnect. */
  #lost(client: pg.Client, err: Error): void {
    if (this.#closed || this.#listener !== client) return;
    this.#listener = undefined;
    client.end().catch(() => undefined);
    this.#log?.warn({ err: err.message, retry_ms: this.#backoff }, 'handshake notifications lost; listening again');
    this.#schedule();
  }

  #schedule(): void {
    this.#retry = setTimeout(() => {
      this.#listen().catch((err: unknown) => {
        this.#log?.debug({ err: err instanceof Error ? err.message : String(err) }, 'LISTEN reconnect failed');
        this.#backoff = Math.min(this.#backoff * 2, RELISTEN_MAX_MS);
        this.#schedule();
      });
    }, this.#backoff);
    this.#retry.unref();
  }
}
