import type { JsonObject } from '../protocol/json.js';
import { challenge } from '../protocol/registry-frame.js';
import {
  actingNode,
  nodeAddress,
  registeredNode,
  setHostname,
  type Handler,
  type RegistryState,
  type RequestInfo,
} from './context.js';
import { boolField, strField, u32Field } from './fields.js';
import { STALE_AFTER_MS } from './liveness.js';
import { RequestError } from './request-error.js';
import { isUnsigned } from './session-binding.js';
import type { NodeRecord } from './store.js';
import { hostnameError, normalizeTags } from './validation.js';

/** Signed changes a node makes to its own record (PROTOCOL.md §5.4). */

export const handleHeartbeat: Handler = async (state, req) => {
  const id = u32Field(req.msg, 'node_id');
  const node =
    isUnsigned(req.msg) && req.session?.boundNode === id
      ? await sessionNode(state, req, id)
      : await actingNode(state, req, id, challenge.heartbeat(id));
  const now = state.now();
  // Batched with the others unless other processes may take the node for offline until then.
  const shared = state.store.shared;
  const soon = shared !== undefined && !state.liveness.isOnline(node, now + STALE_AFTER_MS / 2);
  state.liveness.touch(id, now);
  if (shared !== undefined && soon) await shared.recordLiveness(new Map([[id, now]]), new Map());
  return { type: 'heartbeat_ok', time: Math.floor(now / 1000) };
};

/** The node of an unsigned heartbeat on a connection bound to it (session-binding.ts). */
async function sessionNode(state: RegistryState, req: RequestInfo, id: number): Promise<NodeRecord> {
  const node = await registeredNode(state, id);
  if (node.publicKey !== req.session?.boundKey)
    throw new RequestError('bad_signature', `node ${id} changed its key since this connection proved it: sign again`);
  state.liveness.proven(id, state.now());
  return node;
}

/**
 * Keeps the id, key, owner, trust claims and polo score (so a deregistration cannot wash a score);
 * frees the hostname and resets visibility, tags and task_exec like the reference.
 */
export const handleDeregister: Handler = async (state, req) => {
  const id = u32Field(req.msg, 'node_id');
  const node = id === 0 ? undefined : await state.store.getNode(id);
  if (node === undefined || !node.registered) return { type: 'deregister_ok' };
  await actingNode(state, req, id, challenge.deregister(id));
  await state.store.updateNode(id, { registered: false, hostname: '', isPublic: false, tags: [], taskExec: false });
  state.liveness.forget(id);
  state.log.info({ node_id: id }, 'node deregistered');
  return { type: 'deregister_ok' };
};

export const handleSetHostname: Handler = async (state, req) => {
  const id = u32Field(req.msg, 'node_id');
  const hostname = strField(req.msg, 'hostname');
  await actingNode(state, req, id, challenge.setHostname(id));
  const error = hostnameError(hostname);
  if (error !== undefined) throw new RequestError('invalid_argument', error);
  const holder = await state.store.getNodeByHostname(hostname);
  if (holder !== undefined && holder.id !== id)
    throw new RequestError('already_exists', `hostname "${hostname}" is taken by node ${holder.id}`);
  // Another process may have given it away since the check: the store's constraint decides.
  if (!(await setHostname(state, id, hostname)))
    throw new RequestError('already_exists', `hostname "${hostname}" is taken by another node`);
  return { type: 'set_hostname_ok', node_id: id, hostname };
};

export const handleSetTags: Handler = async (state, req) => {
  const id = u32Field(req.msg, 'node_id');
  const raw = req.msg.tags ?? null;
  if (raw !== null && !(Array.isArray(raw) && raw.every((t) => typeof t === 'string'))) {
    throw new RequestError('invalid_argument', 'tags must be an array of strings');
  }
  await actingNode(state, req, id, challenge.setTags(id));
  const result = normalizeTags((raw ?? []) as string[]);
  if ('error' in result) throw new RequestError('invalid_argument', result.error);
  await state.store.updateNode(id, { tags: result.tags });
  return { type: 'set_tags_ok', node_id: id, tags: result.tags.length > 0 ? result.tags : null };
};

export const handleSetVisibility: Handler = async (state, req) => {
  const id = u32Field(req.msg, 'node_id');
  const isPublic = boolField(req.msg, 'public');
  await actingNode(state, req, id, challenge.setVisibility(id));
  await state.store.updateNode(id, { isPublic });
  return { type: 'set_visibility_ok', node_id: id, visibility: isPublic ? 'public' : 'private' };
};

export const handleSetTaskExec: Handler = async (state, req) => {
  const id = u32Field(req.msg, 'node_id');
  const enabled = boolField(req.msg, 'enabled');
  await actingNode(state, req, id, challenge.setTaskExec(id));
  await state.store.updateNode(id, { taskExec: enabled });
  return { type: 'set_task_exec_ok', node_id: id, task_exec: enabled };
};

/** Anyone may look up a node; `real_addr` only for public nodes (as the reference). */
export const handleLookup: Handler = async (state, req) => {
  const id = u32Field(req.msg, 'node_id');
  const node = await registeredNode(state, id);
  const reply: JsonObject = {
    type: 'lookup_ok',
    node_id: id,
    address: nodeAddress(id),
    networks: [0],
    public_key: node.publicKey,
    public: node.isPublic,
    polo_score: node.poloScore,
  };
  if (node.hostname !== '') reply.hostname = node.hostname;
  if (node.tags.length > 0) reply.tags = [...node.tags];
  if (node.taskExec) reply.task_exec = true;
  if (node.isPublic) reply.real_addr = node.realAddr;
  return reply;
};

export const handleResolveHostname: Handler = async (state, req) => {
  const hostname = strField(req.msg, 'hostname');
  const node = await state.store.getNodeByHostname(hostname);
  if (node === undefined || !node.registered)
    throw new RequestError('not_found', `hostname "${hostname}" is not registered`);
  if (!state.liveness.isOnline(node, state.now()))
    throw new RequestError('offline', `node ${node.id} ("${hostname}") is offline`);
  return {
    type: 'resolve_hostname_ok',
    node_id: node.id,
    address: nodeAddress(node.id),
    public: node.isPublic,
    hostname,
  };
};

export const handleListNetworks: Handler = async (state) => {
  const now = state.now();
  const members = (await state.store.listRegistered()).filter((n) => state.liveness.isOnline(n, now)).length;
  return { type: 'list_networks_ok', networks: [{ id: 0, name: 'backbone', members, join_rule: 'open' }] };
};

/** Online nodes of the backbone (the reference refuses network 0; it is the only one that exists). */
export const handleListNodes: Handler = async (state, req) => {
  const networkId = u32Field(req.msg, 'network_id');
  if (networkId !== 0) throw new RequestError('not_found', `network ${networkId} does not exist`);
  const now = state.now();
  const nodes: JsonObject[] = [];
  for (const node of await state.store.listRegistered()) {
    if (!state.liveness.isOnline(node, now)) continue;
    const entry: JsonObject = { node_id: node.id, address: nodeAddress(node.id) };
    if (node.hostname !== '') entry.hostname = node.hostname;
    if (node.taskExec) entry.task_exec = true;
    if (node.isPublic) entry.real_addr = node.realAddr;
    nodes.push(entry);
  }
  return { type: 'list_nodes_ok', nodes };
};
