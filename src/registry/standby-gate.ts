import type { JsonObject } from '../protocol/json.js';
import type { RegistryState } from './context.js';
import { errorReply } from './dispatch.js';

/** What a standby serves (PROTOCOL.md §5.2); everything else belongs to the primary. */
export const STANDBY_SERVED: ReadonlySet<string> = new Set([
  'lookup',
  'resolve',
  'list_networks',
  'list_nodes',
  'heartbeat',
  'poll_handshakes',
  'resolve_hostname',
  'beacon_list',
]);

/**
 * The refusal a standby sends for a request it does not serve, or undefined when the request may
 * go on. The reference fails such requests with its usual bare error; ours says why.
 */
export function standbyRefusal(state: RegistryState, msg: JsonObject): JsonObject | undefined {
  if (state.standby !== true) return undefined;
  const type = msg.type;
  if (typeof type !== 'string' || STANDBY_SERVED.has(type)) return undefined;
  return errorReply(
    'read_only',
    `this registry is a read-only standby: "${type.slice(0, 64)}" must be sent to the primary (a standby serves only ${[...STANDBY_SERVED].join(', ')})`,
  );
}
