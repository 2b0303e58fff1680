import type { JsonObject } from '../protocol/json.js';

/**
 * Successful requests that change the durable state, i.e. what a replication snapshot carries.
 * Heartbeats (liveness) and beacon registrations (volatile, sent with replication heartbeats) do
 * not count, as in the reference, nor do reads.
 */
const STATE_CHANGING: ReadonlySet<string> = new Set([
  'register',
  'rotate_key',
  'deregister',
  'set_hostname',
  'set_visibility',
  'set_tags',
  'set_task_exec',
  'update_polo_score',
  'set_polo_score',
  'task_receipt',
  'task_expiry',
  'request_handshake',
  'respond_handshake',
  'report_trust',
  'revoke_trust',
]);

const nonEmpty = (value: JsonObject[keyof JsonObject] | undefined): boolean => Array.isArray(value) && value.length > 0;

/** Whether a successful reply to `type` means the stored state changed. */
export function changesState(type: string, reply: JsonObject): boolean {
  if (reply.type === 'error') return false;
  // Every node polls after each heartbeat; only a poll that handed something out changed the inboxes.
  if (type === 'poll_handshakes') return nonEmpty(reply.requests) || nonEmpty(reply.responses);
  return STATE_CHANGING.has(type);
}
