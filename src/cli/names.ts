import { parseAddr } from '../protocol/address.js';
import { isJsonObject, type JsonObject } from '../protocol/json.js';
import { registryTls, resolveSettings } from './config-file.js';
import type { CliContext } from './context.js';

/** The whole budget for naming the nodes of one listing: a slow registry must not slow the command. */
const BUDGET_MS = 1500;
const MAX_LOOKUPS = 64;

/**
 * Hostnames of the given nodes, from the registry's public `lookup` (the registry the daemon uses,
 * as `pilotctl lookup` finds it). Nodes without a hostname, or beyond the budget, are absent; an
 * unreachable registry yields no names at all rather than an error: names are a courtesy.
 */
export async function hostnamesOf(ctx: CliContext, nodeIds: readonly number[]): Promise<Map<number, string>> {
  const names = new Map<number, string>();
  const ids = [...new Set(nodeIds)].filter((id) => Number.isInteger(id) && id > 0).slice(0, MAX_LOOKUPS);
  if (ids.length === 0) return names;
  let client: ReturnType<CliContext['connectRegistry']> | undefined;
  try {
    const settings = await resolveSettings(ctx);
    client = ctx.connectRegistry(settings.registry, registryTls(settings, false));
    const lookups = Promise.all(
      ids.map(async (id) => {
        const reply = await client?.lookup(id).catch(() => undefined);
        if (isJsonObject(reply) && typeof reply.hostname === 'string' && reply.hostname !== '')
          names.set(id, reply.hostname);
      }),
    );
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([lookups, new Promise<void>((resolve) => (timer = setTimeout(resolve, BUDGET_MS)))]);
    clearTimeout(timer);
  } catch {
    // no registry settings or no registry: no names
  } finally {
    client?.close();
  }
  return names;
}

/** The node a listing row is about: its `node_id`, or the node of an address text in `field`. */
export function nodeOfRow(row: JsonObject, field = 'node_id'): number | undefined {
  const v = row[field];
  if (typeof v === 'number') return v;
  if (typeof v !== 'string') return undefined;
  const addr = parseAddr(v);
  return addr.ok ? addr.value.node : undefined;
}

/** The rows with `hostname` (or `<field>_hostname` for an address field) added where the registry knows one. */
export async function named(ctx: CliContext, rows: JsonObject[], field = 'node_id'): Promise<JsonObject[]> {
  const names = await hostnamesOf(
    ctx,
    rows.map((r) => nodeOfRow(r, field)).filter((n): n is number => n !== undefined),
  );
  const key = field === 'node_id' ? 'hostname' : `${field}_hostname`;
  return rows.map((r) => {
    const node = nodeOfRow(r, field);
    const name = node === undefined ? undefined : names.get(node);
    return name === undefined ? r : { ...r, [key]: name };
  });
}
