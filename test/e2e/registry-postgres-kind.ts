import { postgresUnavailable, startPostgres, type PgServer } from '../pg-server.js';
import { Cluster, type ClusterOptions } from './cluster.js';
import type { StoreKind } from './registry-battery.js';

/**
 * Why the PostgreSQL tests cannot run here, printed once; undefined when they can. In CI (where
 * .ci/run installs the server) they run anyway, so that a missing server fails instead of skipping.
 */
export function postgresSkip(): string | undefined {
  const reason = postgresUnavailable();
  if (reason === undefined) return undefined;
  process.stdout.write(`# PostgreSQL tests: ${reason}\n`);
  return process.env.CI ? undefined : reason;
}

/** `processes` registry servers sharing one database of a PostgreSQL server the tests start. */
export function postgresKind(processes: number): StoreKind {
  let server: PgServer | undefined;
  const skip = postgresSkip();
  return {
    name: `PostgreSQL, ${processes} processes`,
    processes,
    ...(skip !== undefined ? { skip } : {}),
    async setup() {
      server = await startPostgres();
    },
    async teardown() {
      await server?.stop();
    },
    async freshStore() {
      if (server === undefined) throw new Error('PostgreSQL server not started');
      return server.createDatabase();
    },
  };
}

/** Where a cluster's registries keep their state: one SQLite process, or several processes on PostgreSQL. */
export interface ClusterKind {
  readonly name: string;
  readonly skip?: string;
  start(opts?: Omit<ClusterOptions, 'store' | 'registries'>): Promise<Cluster>;
  /** Stops what `start` started besides the cluster. */
  stop(): Promise<void>;
}

export const sqliteCluster: ClusterKind = {
  name: 'SQLite',
  start: (opts) => Cluster.start(opts),
  stop: async () => {},
};

/** `processes` registry processes on one database, daemons spread over them by a TCP balancer. */
export function postgresCluster(processes: number): ClusterKind {
  let server: PgServer | undefined;
  const skip = postgresSkip();
  return {
    name: `PostgreSQL, ${processes} registry processes`,
    ...(skip !== undefined ? { skip } : {}),
    async start(opts = {}) {
      server ??= await startPostgres();
      return Cluster.start({ ...opts, store: await server.createDatabase(), registries: processes });
    },
    async stop() {
      await server?.stop();
      server = undefined;
    },
  };
}
