import type { Logger } from '../log.js';
import { openRegistryStore } from './embedded-store.js';
import { PostgresRegistryStore } from './postgres-store.js';
import type { RegistryStore } from './store.js';

/** `-store` names a PostgreSQL database (shared by several registry processes) rather than a file. */
export function isStoreUrl(spec: string): boolean {
  return /^postgres(ql)?:\/\//i.test(spec);
}

/** A `postgres://user@host:port/db` URL opens the shared store; anything else is a SQLite file (or `:memory:`). */
export async function openStore(spec: string, log?: Logger): Promise<RegistryStore> {
  if (isStoreUrl(spec)) return PostgresRegistryStore.open(spec, log === undefined ? {} : { log });
  return openRegistryStore(spec);
}
