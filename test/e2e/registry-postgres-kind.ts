import { postgresUnavailable, startPostgres, type PgServer } from '../pg-server.js';
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
