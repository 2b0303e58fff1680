/**
 * What a phase of bench:registry cost per request: CPU of the registry processes and, on
 * PostgreSQL, CPU of the database server, statements it executed (pg_stat_statements: about one
 * round trip each) and WAL syncs (commits that waited for the disk).
 */
import { readdirSync, readFileSync } from 'node:fs';
import pg from 'pg';
import type { RegistryProcess } from './registry-procs.js';

export interface CostSample {
  readonly registryCpuMs: number;
  readonly pgCpuMs: number;
  readonly statements: number;
  readonly walSyncs: number;
}

export type StatementStats = Map<string, { calls: number; totalMs: number; query: string }>;

export interface Cost {
  /** Registry CPU per request (all processes). */
  readonly cpu_ms: number;
  /** PostgreSQL CPU per request (every backend and background process). */
  readonly pg_cpu_ms: number;
  readonly statements: number;
  readonly wal_syncs: number;
}

/** Clock ticks per second of /proc/<pid>/stat times (100 on Linux). */
const TICKS_PER_S = 100;
/** Backends publish their counters at most about once a second. */
const STATS_LAG_MS = 1100;

/** CPU (ms) of a process and its children, from /proc. */
function treeCpuMs(root: number): number {
  let ticks = 0;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue;
    }
    // Fields after the command name (which may hold spaces): state ppid … utime(14) stime(15).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const pid = Number(entry);
    if (pid !== root && Number(fields[1]) !== root) continue;
    ticks += Number(fields[11]) + Number(fields[12]);
  }
  return (ticks * 1000) / TICKS_PER_S;
}

export class CostMeter {
  private constructor(
    private readonly registries: () => readonly RegistryProcess[],
    private readonly db: { client: pg.Client; pid: number } | undefined,
  ) {}

  /** `database`: the store's URL and the postmaster's pid (PostgreSQL runs with pg_stat_statements). */
  static async open(
    registries: () => readonly RegistryProcess[],
    database?: { url: string; pid: number },
  ): Promise<CostMeter> {
    if (database === undefined) return new CostMeter(registries, undefined);
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    await client.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
    return new CostMeter(registries, { client, pid: database.pid });
  }

  async sample(): Promise<CostSample> {
    const cpus = await Promise.all(this.registries().map((r) => r.cpu()));
    const registryCpuMs = cpus.reduce((a, b) => a + b, 0);
    if (this.db === undefined) return { registryCpuMs, pgCpuMs: 0, statements: 0, walSyncs: 0 };
    await new Promise((r) => setTimeout(r, STATS_LAG_MS));
    const { rows } = await this.db.client.query<{ calls: string; syncs: string }>(
      `SELECT (SELECT coalesce(sum(calls), 0) FROM pg_stat_statements
                WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())) AS calls,
              (SELECT wal_sync FROM pg_stat_wal) AS syncs`,
    );
    await this.db.client.query('SELECT pg_stat_clear_snapshot()');
    return {
      registryCpuMs,
      pgCpuMs: treeCpuMs(this.db.pid),
      statements: Number(rows[0]?.calls ?? 0),
      walSyncs: Number(rows[0]?.syncs ?? 0),
    };
  }

  /** Time and calls of each statement so far (pg_stat_statements), to diff against later. */
  async statements(): Promise<StatementStats> {
    const stats: StatementStats = new Map();
    if (this.db === undefined) return stats;
    const { rows } = await this.db.client.query<{ id: string; calls: string; total: number; query: string }>(
      `SELECT queryid::text AS id, calls, total_exec_time AS total, left(regexp_replace(query, '\\s+', ' ', 'g'), 90) AS query
       FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())`,
    );
    for (const r of rows) stats.set(r.id, { calls: Number(r.calls), totalMs: r.total, query: r.query });
    return stats;
  }

  /** The statements that took the database's time since `before`, for a progress line each. */
  async topStatements(n: number, before: StatementStats = new Map()): Promise<string[]> {
    const now = await this.statements();
    return [...now]
      .map(([id, s]) => {
        const b = before.get(id);
        return { ...s, calls: s.calls - (b?.calls ?? 0), totalMs: s.totalMs - (b?.totalMs ?? 0) };
      })
      .filter((s) => s.calls > 0)
      .sort((a, b) => b.totalMs - a.totalMs)
      .slice(0, n)
      .map(
        (s) =>
          `${s.totalMs.toFixed(0)} ms in ${s.calls} calls (${(s.totalMs / s.calls).toFixed(3)} ms each): ${s.query}`,
      );
  }

  async close(): Promise<void> {
    await this.db?.client.end().catch(() => undefined);
  }
}

const per = (v: number, n: number): number => Math.round((v / Math.max(1, n)) * 1000) / 1000;

export function costPer(before: CostSample, after: CostSample, requests: number): Cost {
  return {
    cpu_ms: per(after.registryCpuMs - before.registryCpuMs, requests),
    pg_cpu_ms: per(after.pgCpuMs - before.pgCpuMs, requests),
    statements: per(after.statements - before.statements, requests),
    wal_syncs: per(after.walSyncs - before.walSyncs, requests),
  };
}

export const fmtCost = (c: Cost): string =>
  `registry CPU ${c.cpu_ms} ms, PostgreSQL CPU ${c.pg_cpu_ms} ms, ${c.statements} statements, ${c.wal_syncs} WAL syncs per request`;
