import { readFile, stat } from 'node:fs/promises';
import { PilotError } from '../errors.js';
import { parseSnapshot } from './snapshot-import.js';
import type { RegistryStore } from './store.js';

/** Larger files are refused before reading (a Go store of a million nodes is far smaller). */
export const MAX_IMPORT_BYTES = 256 * 1024 * 1024;

export interface ImportSummary {
  readonly nodes: number;
  readonly registered: number;
  readonly trustClaims: number;
  readonly handshakeRequests: number;
  readonly droppedNetworks: number;
}

const reason = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/**
 * Imports a Go registry's `-store` file (PROTOCOL.md §5.9) into an empty store, all or nothing.
 * A store that already holds nodes is refused: merging two registries' id spaces is not possible.
 */
export async function importJsonStore(store: RegistryStore, path: string, now = Date.now()): Promise<ImportSummary> {
  const existing = (await store.exportState()).nodes.length;
  if (existing > 0) {
    throw new PilotError(
      'already_exists',
      `the registry store already holds ${existing} node(s); refusing to import ${path} over it`,
      'import into a new store: give -store a file that does not exist yet',
    );
  }
  let size: number;
  try {
    size = (await stat(path)).size;
  } catch (err) {
    throw new PilotError('not_found', `cannot read ${path}: ${reason(err)}`);
  }
  if (size > MAX_IMPORT_BYTES)
    throw new PilotError('too_large', `${path} is ${size} bytes; the import limit is ${MAX_IMPORT_BYTES}`);
  let value: unknown;
  try {
    value = JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    throw new PilotError('invalid_argument', `${path} is not a JSON registry store: ${reason(err)}`);
  }
  const { contents, droppedNetworks } = parseSnapshot(value, now);
  await store.replaceState(contents);
  return {
    nodes: contents.nodes.length,
    registered: contents.nodes.filter((n) => n.registered).length,
    trustClaims: contents.trustClaims.length,
    handshakeRequests: contents.handshakeRequests.length,
    droppedNetworks,
  };
}
