import type { JsonObject, JsonValue } from '../protocol/json.js';
import type { Handler, RegistryState, RequestInfo } from './context.js';
import {
  handleDeregister,
  handleHeartbeat,
  handleListNetworks,
  handleListNodes,
  handleLookup,
  handleResolveHostname,
  handleSetHostname,
  handleSetTags,
  handleSetTaskExec,
  handleSetVisibility,
} from './handlers-nodes.js';
import {
  handleBeaconList,
  handleBeaconRegister,
  handleGetPoloScore,
  handleSetPoloScore,
  handleUpdatePoloScore,
} from './handlers-misc.js';
import { handleTaskAccept, handleTaskExpiry, handleTaskReceipt } from './handlers-polo.js';
import { handleRegister, handleRotateKey } from './handlers-register.js';
import {
  handlePollHandshakes,
  handlePunch,
  handleReportTrust,
  handleRequestHandshake,
  handleRespondHandshake,
  handleResolve,
  handleRevokeTrust,
} from './handlers-trust.js';
import { UNKNOWN_REQUEST_TYPE } from './request-counter.js';
import { RequestError, type ReplyErrorCode } from './request-error.js';
import { changesState } from './state-changes.js';

const HANDLERS: ReadonlyMap<string, Handler> = new Map<string, Handler>([
  ['register', handleRegister],
  ['rotate_key', handleRotateKey],
  ['lookup', handleLookup],
  ['resolve', handleResolve],
  ['resolve_hostname', handleResolveHostname],
  ['heartbeat', handleHeartbeat],
  ['deregister', handleDeregister],
  ['set_hostname', handleSetHostname],
  ['set_visibility', handleSetVisibility],
  ['set_tags', handleSetTags],
  ['set_task_exec', handleSetTaskExec],
  ['get_polo_score', handleGetPoloScore],
  ['update_polo_score', handleUpdatePoloScore],
  ['set_polo_score', handleSetPoloScore],
  ['task_receipt', handleTaskReceipt],
  ['task_expiry', handleTaskExpiry],
  ['task_accept', handleTaskAccept],
  ['request_handshake', handleRequestHandshake],
  ['poll_handshakes', handlePollHandshakes],
  ['respond_handshake', handleRespondHandshake],
  ['report_trust', handleReportTrust],
  ['revoke_trust', handleRevokeTrust],
  ['punch', handlePunch],
  ['list_nodes', handleListNodes],
  ['list_networks', handleListNetworks],
  ['beacon_register', handleBeaconRegister],
  ['beacon_list', handleBeaconList],
]);

/**
 * The reference replies only `{"error":"request failed","type":"error"}` (§14 #21). Go clients
 * read `error` and ignore the rest; ours read `code` and `message`.
 */
export function errorReply(code: ReplyErrorCode, message: string): JsonObject {
  return { type: 'error', error: 'request failed', code, message };
}

/** Runs one request; never throws. Failures become error replies, unexpected ones are logged. */
export async function handleRequest(state: RegistryState, req: RequestInfo): Promise<JsonObject> {
  const type = req.msg.type;
  const handler = typeof type === 'string' ? HANDLERS.get(type) : undefined;
  state.requests.count(handler === undefined ? UNKNOWN_REQUEST_TYPE : String(type));
  if (handler === undefined) {
    return errorReply(
      'unknown_type',
      typeof type === 'string' ? `unknown message type "${type.slice(0, 64)}"` : 'message has no "type"',
    );
  }
  try {
    const reply = await handler(state, req);
    state.requests.succeeded(String(type));
    if (changesState(String(type), reply)) state.stateChanged?.();
    return reply;
  } catch (err) {
    if (err instanceof RequestError) {
      state.log.debug({ type, ip: req.remoteIp, code: err.code, err: err.message }, 'request refused');
      return errorReply(err.code, err.message);
    }
    state.log.error({ type, ip: req.remoteIp, err }, 'request handler failed');
    return errorReply('internal', `internal error while handling "${type}"`);
  }
}

/** Copies a JSON value with object keys in byte order, as Go writes maps. */
export function sortKeys(value: JsonValue): JsonValue {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value === null || typeof value !== 'object') return value;
  const out: JsonObject = {};
  for (const key of Object.keys(value).sort()) out[key] = sortKeys(value[key] as JsonValue);
  return out;
}
