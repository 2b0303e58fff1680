import { fromBase64 } from '../crypto/base64.js';
import { ED25519_PUBLIC_KEY_SIZE } from '../crypto/ed25519.js';
import { challenge } from '../protocol/registry-frame.js';
import type { JsonObject } from '../protocol/json.js';
import {
  FEATURE_SESSION_HEARTBEAT,
  FEATURE_SIGNED_BODY,
  FEATURE_WATCH_HANDSHAKES,
  SIGNED_AT_FIELD,
} from '../protocol/registry-auth.js';
import { registerChallenge } from './challenges.js';
import {
  actingNode,
  markSignsBody,
  nodeAddress,
  setHostname,
  staticAllowed,
  type Handler,
  type RegistryState,
  type RequestInfo,
} from './context.js';
import { endpointIp, observedEndpoint } from './endpoint.js';
import { strField, u32Field } from './fields.js';
import { RequestError } from './request-error.js';
import { bindSession } from './session-binding.js';
import { StoreConflictError } from './store-errors.js';
import type { NodeRecord } from './store.js';
import { hostnameError } from './validation.js';

function checkPublicKey(key: string, field: string): void {
  if (key === '') throw new RequestError('invalid_argument', `${field} is required`);
  const raw = fromBase64(key);
  if (raw === undefined || raw.length !== ED25519_PUBLIC_KEY_SIZE) {
    throw new RequestError('invalid_argument', `${field} must be a standard-base64 32-byte Ed25519 key`);
  }
}

/**
 * True when the request carries a valid signed body by `publicKey`; throws if it carries a bad
 * one, or none where one is required (the registry requires it, or the key has signed before).
 * Go daemons register unsigned.
 */
async function provesKey(
  state: RegistryState,
  req: RequestInfo,
  publicKey: string,
  known: NodeRecord | undefined,
): Promise<boolean> {
  if (req.msg.signature === undefined && req.msg[SIGNED_AT_FIELD] === undefined) {
    if (staticAllowed(state, known)) return false;
    throw new RequestError(
      'bad_signature',
      known?.signsBody === true
        ? `node ${known.id} has signed its requests before; an unsigned register of its key is refused`
        : 'this registry requires a signed register (signature over the request body)',
    );
  }
  await state.verifier.verify(publicKey, registerChallenge(publicKey), req.msg, state.now(), {
    staticAllowed: false,
    ...(known !== undefined ? { nodeId: known.id } : {}),
  });
  return true;
}

/**
 * A known key may move its endpoint only with proof (§14 #2 and endpoint hijack): a signature by
 * the key, the same source IP as the stored endpoint, or — so that an unsigned Go daemon that
 * changed networks can come back — no proven activity from the key for the stale period.
 */
async function reRegister(
  state: RegistryState,
  node: NodeRecord,
  endpoint: string,
  proven: boolean,
  owner: string,
  remoteIp: string,
): Promise<NodeRecord> {
  const now = state.now();
  const moving = node.realAddr !== '' && endpointIp(node.realAddr) !== remoteIp;
  if (moving && !proven && state.liveness.recentlyProven(node, now)) {
    throw new RequestError(
      'forbidden',
      `node ${node.id} is registered from ${endpointIp(node.realAddr)}; moving it to ${remoteIp} needs a signed register`,
    );
  }
  const patch: { realAddr: string; owner?: string; registered?: boolean } = { realAddr: endpoint };
  if (node.owner === '' && owner !== '') {
    const holder = await state.store.getNodeByOwner(owner);
    if (holder === undefined || holder.id === node.id) patch.owner = owner;
  }
  if (!node.registered) patch.registered = true;
  return state.store.updateNode(node.id, patch);
}

/** A new key gets a new node; a key registered meanwhile by another process is taken as known. */
async function createOrKnown(
  state: RegistryState,
  publicKey: string,
  owner: string,
  endpoint: string,
  proven: boolean,
): Promise<{ node: NodeRecord; created: boolean }> {
  try {
    return {
      node: await state.store.createNode({ publicKey, owner, realAddr: endpoint, signsBody: proven }),
      created: true,
    };
  } catch (err) {
    if (!(err instanceof StoreConflictError && err.field === 'public_key')) throw err;
    const node = await state.store.getNodeByKey(publicKey);
    if (node === undefined) throw err;
    return { node, created: false };
  }
}

export const handleRegister: Handler = async (state, req) => {
  const publicKey = strField(req.msg, 'public_key');
  checkPublicKey(publicKey, 'public_key');
  const owner = strField(req.msg, 'owner');
  const endpoint = observedEndpoint(req.remoteIp, req.remotePort, strField(req.msg, 'listen_addr'));
  const now = state.now();
  const known = await state.store.getNodeByKey(publicKey);
  // Known keys are exempt from the registration rate (as the reference).
  if (known === undefined && !state.registerLimiter.take(req.remoteIp, now)) {
    throw new RequestError('rate_limited', `too many registrations from ${req.remoteIp} (10 per minute)`);
  }
  const proven = await provesKey(state, req, publicKey, known);
  let node: NodeRecord;
  if (known !== undefined) {
    node = await reRegister(state, known, endpoint, proven, owner, req.remoteIp);
    if (proven) node = await markSignsBody(state, node);
  } else {
    // The reference hands an existing node (and its id) to any new key that names its owner (§14 #2).
    const holder = await state.store.getNodeByOwner(owner);
    if (holder !== undefined) {
      throw new RequestError(
        'already_exists',
        `owner "${owner}" belongs to node ${holder.id}, registered with another key`,
      );
    }
    const made = await createOrKnown(state, publicKey, owner, endpoint, proven);
    node = made.node;
    if (proven) state.verifier.adopt(publicKey, 'register', node.id);
    if (made.created) state.log.info({ node_id: node.id, endpoint }, 'node registered');
  }
  state.liveness.touch(node.id, now);
  if (proven) {
    state.liveness.proven(node.id, now);
    bindSession(req.session, node.id, node.publicKey);
  }
  // Other processes sharing the store see a new registration at once, not at the next batch.
  const shared = state.store.shared;
  if (shared !== undefined)
    await shared.recordLiveness(new Map([[node.id, now]]), new Map(proven ? [[node.id, now]] : []));

  const reply: JsonObject = {
    type: 'register_ok',
    node_id: node.id,
    network_id: 0,
    address: nodeAddress(node.id),
    public_key: publicKey,
    features: [FEATURE_SIGNED_BODY, FEATURE_WATCH_HANDSHAKES, FEATURE_SESSION_HEARTBEAT],
  };
  const hostname = strField(req.msg, 'hostname');
  if (hostname !== '') {
    const error = hostnameError(hostname);
    const taken = error === undefined ? await state.store.getNodeByHostname(hostname) : undefined;
    if (error !== undefined) reply.hostname_error = error;
    else if ((taken !== undefined && taken.id !== node.id) || !(await setHostname(state, node.id, hostname)))
      reply.hostname_error = `hostname "${hostname}" is taken`;
    else reply.hostname = hostname;
  }
  return reply;
};

export const handleRotateKey: Handler = async (state, req) => {
  const id = u32Field(req.msg, 'node_id');
  const newKey = strField(req.msg, 'new_public_key');
  checkPublicKey(newKey, 'new_public_key');
  await actingNode(state, req, id, challenge.rotateKey(id));
  const holder = await state.store.getNodeByKey(newKey);
  if (holder !== undefined && holder.id !== id)
    throw new RequestError('already_exists', `new_public_key is already used by node ${holder.id}`);
  const node = await rotate(state, id, newKey);
  state.log.info({ node_id: id }, 'key rotated');
  return { type: 'rotate_key_ok', node_id: id, address: nodeAddress(id), public_key: node.publicKey };
};

async function rotate(state: RegistryState, id: number, publicKey: string): Promise<NodeRecord> {
  try {
    return await state.store.updateNode(id, { publicKey });
  } catch (err) {
    if (err instanceof StoreConflictError && err.field === 'public_key')
      throw new RequestError('already_exists', 'new_public_key is already used by another node');
    throw err;
  }
}
