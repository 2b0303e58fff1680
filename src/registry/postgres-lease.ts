import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import type { Logger } from '../log.js';
import type { PostgresNodeView } from './postgres-node-view.js';
import { sleep } from './sleep.js';

/** The notification channel of sync tokens and their acknowledgements. */
export const LEASE_CHANNEL = 'pilot_lease';
/** How long a renewed lease lets a process serve records from memory, counted from before the renewal was sent. */
export const LEASE_MS = 1000;
const RENEW_MS = 250;
/** Added to the rest of another process's lease before its silence counts as its expiry (timers, clock rates). */
const MARGIN_MS = 50;
/** Leases that ran out this long ago are deleted when a process starts listening. */
const FORGET_AFTER = '1 hour';

const RENEW = `INSERT INTO registry_leases (member, until) VALUES ($1, clock_timestamp() + $2 * interval '1 millisecond')
  ON CONFLICT (member) DO UPDATE SET until = EXCLUDED.until`;
/** The token goes out and the leases of the others are read in one statement (one snapshot, taken after the change). */
const SETTLE = `SELECT pg_notify('${LEASE_CHANNEL}', $1) AS sent,
  ARRAY(SELECT member || ' ' || ceil(extract(epoch FROM until - clock_timestamp()) * 1000)::bigint
        FROM registry_leases WHERE until > clock_timestamp() AND member <> $2) AS leases`;

interface Waiter {
  readonly token: number;
  readonly pending: Map<string, NodeJS.Timeout>;
  readonly done: () => void;
}

/**
 * Leases on the node records a process keeps in memory (PostgresNodeView), so that a copy is served
 * without a round trip and yet no process answers with a record older than a change another one
 * has acknowledged:
 *
 * - A process serves copies only while it holds a lease, renewed every 250 ms on its listening
 *   connection (a row of registry_leases valid for a second) and counted from before the renewal
 *   was sent. PostgreSQL delivers the notifications committed before a statement ahead of its
 *   reply, so once a renewal is answered every change committed before it was sent has dropped its
 *   copy here.
 * - A process that changed a record, before it answers, sends a sync token on the same connection
 *   and reads the leases of the others in the same statement. Each of them acknowledges the token
 *   once it has applied every announcement before it (they arrive in commit order), and the writer
 *   waits for each acknowledgement, or for the lease of a process that does not answer to run out.
 *
 * Reads pay nothing; a change pays one statement and, with other processes, one round trip of
 * theirs. While the listening connection is down nothing is served from memory and a change waits
 * out any lease that may have been taken before it.
 */
export class PostgresLease {
  /** This process among those sharing the database. */
  readonly member = randomBytes(8).toString('hex');
  readonly #view: PostgresNodeView;
  readonly #log: Logger | undefined;
  #client: pg.Client | undefined;
  #timer: NodeJS.Timeout | undefined;
  #renewing = false;
  #token = 0;
  /** The newest of this process's tokens that each other process acknowledged. */
  readonly #acked = new Map<string, number>();
  readonly #waiters = new Set<Waiter>();
  /** Tokens of other processes to acknowledge (writer → newest token), sent once per turn. */
  readonly #toAck = new Map<string, number>();
  #ackScheduled = false;
  /** Callers of settle() in this turn, waiting for the token to be sent. */
  #group: (() => void)[] | undefined;
  /** The last statement sent on the listening connection: a pg client takes one at a time. */
  #last: Promise<unknown> = Promise.resolve();

  constructor(view: PostgresNodeView, log: Logger | undefined) {
    this.#view = view;
    this.#log = log;
  }

  /** Sends a statement on the listening connection after those sent before it. */
  #query<R extends pg.QueryResultRow>(client: pg.Client, query: pg.QueryConfig): Promise<pg.QueryResult<R>> {
    const result = this.#last.then(() => client.query<R>(query));
    this.#last = result.catch(() => undefined);
    return result;
  }

  /** The listening connection is up and listens on LEASE_CHANNEL: the lease is taken now and renewed. */
  attach(client: pg.Client): void {
    this.#client = client;
    this.#last = Promise.resolve();
    this.#query(client, {
      text: `DELETE FROM registry_leases WHERE until < clock_timestamp() - interval '${FORGET_AFTER}'`,
    }).catch(() => undefined);
    void this.#renew();
    if (this.#timer === undefined) {
      this.#timer = setInterval(() => void this.#renew(), RENEW_MS);
      this.#timer.unref();
    }
  }

  /** The listening connection is gone (the view stops serving by itself); renewals wait for the next one. */
  detach(): void {
    this.#client = undefined;
  }

  async #renew(): Promise<void> {
    const client = this.#client;
    if (client === undefined || this.#renewing) return;
    this.#renewing = true;
    const sent = performance.now();
    try {
      await this.#query(client, { name: 'renew_lease', text: RENEW, values: [this.member, LEASE_MS] });
      if (this.#client === client) this.#view.lease(sent + LEASE_MS);
    } catch (err) {
      this.#log?.debug({ err: err instanceof Error ? err.message : String(err) }, 'lease not renewed');
    } finally {
      this.#renewing = false;
    }
  }

  /**
   * Called after a change of node records committed: resolves once every other process that may
   * serve a copy from memory has applied it. The changes of one event-loop turn share a token.
   */
  settle(): Promise<void> {
    return new Promise((resolve) => {
      let group = this.#group;
      if (group === undefined) {
        const next: (() => void)[] = [];
        group = next;
        this.#group = next;
        setImmediate(() => {
          this.#group = undefined;
          void this.#settle().then(() => {
            for (const done of next) done();
          });
        });
      }
      group.push(resolve);
    });
  }

  async #settle(): Promise<void> {
    const started = performance.now();
    const client = this.#client;
    const token = ++this.#token;
    let leases: string[];
    try {
      if (client === undefined) throw new Error('not listening');
      const { rows } = await this.#query<{ leases: string[] }>(client, {
        name: 'settle',
        text: SETTLE,
        values: [`sync:${this.member}:${token}`, this.member],
      });
      leases = rows[0]?.leases ?? [];
    } catch {
      // Nobody can be asked: wait out every lease that may have been renewed before the change.
      await sleep(Math.max(0, started + LEASE_MS + MARGIN_MS - performance.now()));
      return;
    }
    const others = new Map(leases.map((lease) => lease.split(' ') as [string, string]));
    // Acknowledgements of processes that hold no lease any more are not needed.
    for (const member of this.#acked.keys()) if (!others.has(member)) this.#acked.delete(member);
    await new Promise<void>((resolve) => {
      const waiter: Waiter = { token, pending: new Map(), done: resolve };
      for (const [member, ms] of others) {
        if ((this.#acked.get(member) ?? 0) >= token) continue;
        const timer = setTimeout(() => this.#release(waiter, member), Number(ms) + MARGIN_MS);
        waiter.pending.set(member, timer);
      }
      if (waiter.pending.size === 0) resolve();
      else this.#waiters.add(waiter);
    });
  }

  #release(waiter: Waiter, member: string): void {
    clearTimeout(waiter.pending.get(member));
    waiter.pending.delete(member);
    if (waiter.pending.size > 0) return;
    this.#waiters.delete(waiter);
    waiter.done();
  }

  /** A notification on LEASE_CHANNEL. */
  handle(payload: string): void {
    const [kind, from = '', rest = ''] = payload.split(':');
    if (from === this.member) return;
    if (kind === 'sync') {
      // Everything committed before the token has been applied by now: notifications come in commit order.
      const token = Number(rest);
      if (Number.isSafeInteger(token)) this.#ack(from, token);
    } else if (kind === 'ack') {
      for (const item of rest.split(',')) {
        const [writer, n] = item.split('.');
        const token = Number(n);
        if (writer === this.member && Number.isSafeInteger(token)) this.#acknowledged(from, token);
      }
    }
  }

  #acknowledged(member: string, token: number): void {
    if (token <= (this.#acked.get(member) ?? 0)) return;
    this.#acked.set(member, token);
    for (const waiter of [...this.#waiters])
      if (waiter.token <= token && waiter.pending.has(member)) this.#release(waiter, member);
  }

  #ack(writer: string, token: number): void {
    this.#toAck.set(writer, Math.max(token, this.#toAck.get(writer) ?? 0));
    if (this.#ackScheduled) return;
    this.#ackScheduled = true;
    setImmediate(() => {
      this.#ackScheduled = false;
      const client = this.#client;
      const items = [...this.#toAck].map(([w, n]) => `${w}.${n}`);
      this.#toAck.clear();
      // Without a listening connection there is nothing to acknowledge with: the writer waits out this lease.
      if (client === undefined) return;
      this.#query(client, {
        name: 'ack',
        text: `SELECT pg_notify('${LEASE_CHANNEL}', $1)`,
        values: [`ack:${this.member}:${items.join(',')}`],
      }).catch((err: unknown) =>
        this.#log?.debug({ err: err instanceof Error ? err.message : String(err) }, 'sync token not acknowledged'),
      );
    });
  }

  /** Gives the lease up, so that writers stop waiting for this process. */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    const client = this.#client;
    this.#client = undefined;
    if (client === undefined) return;
    await this.#query(client, {
      name: 'drop_lease',
      text: 'DELETE FROM registry_leases WHERE member = $1',
      values: [this.member],
    }).catch(() => undefined);
  }
}
