import type { JsonObject } from '../protocol/json.js';
import { challenge } from '../protocol/registry-frame.js';
import { actingNode, mayResolve, registeredNode, type Handler, type RegistryState } from './context.js';
import { boolField, strField, u32Field } from './fields.js';
import { RequestError } from './request-error.js';
import type { NodeRecord } from './store.js';

/** Inbox bound per target node (as the reference) and lifetime of an unanswered entry (§14 #16). */
export const HANDSHAKE_INBOX_MAX = 100;
export const HANDSHAKE_TTL_MS = 24 * 3600_000;
export const MAX_JUSTIFICATION = 4096;

async function onlineTarget(state: RegistryState, id: number): Promise<NodeRecord> {
  const node = await registeredNode(state, id);
  if (!state.liveness.isOnline(node, state.now())) throw new RequestError('offline', `node ${id} is offline`);
  return node;
}

function differentPeers(a: number, b: number): void {
  if (a === b) throw new RequestError('invalid_argument', `node ${a} cannot do this with itself`);
}

/**
 * A private target resolves only for itself or for a node it has an effective (mutual) trust
 * pair with; the reference accepted a pair created by one side alone (§14 #3).
 */
export const handleResolve: Handler = async (state, req) => {
  const target = u32Field(req.msg, 'node_id');
  const requester = u32Field(req.msg, 'requester_id');
  await actingNode(state, req, requester, challenge.resolve(requester, target));
  const node = await onlineTarget(state, target);
  if (!(await mayResolve(state, requester, node))) {
    throw new RequestError('untrusted', `node ${target} is private and has no mutual trust with node ${requester}`);
  }
  return { type: 'resolve_ok', node_id: target, real_addr: node.realAddr };
};

/** Both endpoints go only to a participant allowed to resolve the other side (§14 #6). */
export const handlePunch: Handler = async (state, req) => {
  const requester = u32Field(req.msg, 'requester_id');
  const a = u32Field(req.msg, 'node_a');
  const b = u32Field(req.msg, 'node_b');
  if (requester !== a && requester !== b) throw new RequestError('forbidden', 'requester_id must be node_a or node_b');
  await actingNode(state, req, requester, challenge.punch(a, b));
  const nodeA = await onlineTarget(state, a);
  const nodeB = await onlineTarget(state, b);
  const other = requester === a ? nodeB : nodeA;
  if (!(await mayResolve(state, requester, other))) {
    throw new RequestError('untrusted', `node ${other.id} is private and has no mutual trust with node ${requester}`);
  }
  return { type: 'punch_ok', node_a: a, node_a_addr: nodeA.realAddr, node_b: b, node_b_addr: nodeB.realAddr };
};

/** Records the directed claim only; the pair takes effect once the peer claims it too (§14 #3). */
export const handleReportTrust: Handler = async (state, req) => {
  const id = u32Field(req.msg, 'node_id');
  const peer = u32Field(req.msg, 'peer_id');
  await actingNode(state, req, id, challenge.reportTrust(id, peer));
  await registeredNode(state, peer, 'peer');
  differentPeers(id, peer);
  await state.store.addTrustClaim(id, peer, state.now());
  return { type: 'report_trust_ok' };
};

/** Either side may end the pair; both claims go. */
export const handleRevokeTrust: Handler = async (state, req) => {
  const id = u32Field(req.msg, 'node_id');
  const peer = u32Field(req.msg, 'peer_id');
  await actingNode(state, req, id, challenge.revokeTrust(id, peer));
  if ((await state.store.removeTrustPair(id, peer)) === 0)
    throw new RequestError('not_found', `no trust between node ${id} and node ${peer}`);
  return { type: 'revoke_trust_ok' };
};

export const handleRequestHandshake: Handler = async (state, req) => {
  const from = u32Field(req.msg, 'from_node_id');
  const to = u32Field(req.msg, 'to_node_id');
  const justification = strField(req.msg, 'justification');
  await actingNode(state, req, from, challenge.requestHandshake(from, to));
  await registeredNode(state, to, 'target');
  differentPeers(from, to);
  if (justification.length > MAX_JUSTIFICATION) {
    throw new RequestError('invalid_argument', `justification longer than ${MAX_JUSTIFICATION} characters`);
  }
  const result = await state.store.addHandshakeRequest(
    { fromNodeId: from, toNodeId: to, justification, createdAt: state.now() },
    HANDSHAKE_INBOX_MAX,
  );
  if (result === 'full')
    throw new RequestError('rate_limited', `handshake inbox of node ${to} is full (${HANDSHAKE_INBOX_MAX} pending)`);
  state.notifyHandshake(to);
  return { type: 'request_handshake_ok', status: 'delivered' };
};

/**
 * Returns requests not delivered before and drains the responses. Delivered requests stay pending
 * (until answered or 24 h old) so that `respond_handshake` can tell a real request from none.
 */
export const handlePollHandshakes: Handler = async (state, req) => {
  const id = u32Field(req.msg, 'node_id');
  await actingNode(state, req, id, challenge.pollHandshakes(id));
  const cutoff = state.now() - HANDSHAKE_TTL_MS;
  const seconds = (ms: number): number => Math.floor(ms / 1000);
  const requests: JsonObject[] = (await state.store.deliverHandshakeRequests(id))
    .filter((r) => r.createdAt >= cutoff)
    .map((r) => ({ from_node_id: r.fromNodeId, justification: r.justification, timestamp: seconds(r.createdAt) }));
  const responses: JsonObject[] = (await state.store.takeHandshakeResponses(id))
    .filter((r) => r.createdAt >= cutoff)
    .map((r) => ({ from_node_id: r.fromNodeId, accept: r.accept, timestamp: seconds(r.createdAt) }));
  return { type: 'poll_handshakes_ok', requests, responses };
};

/**
 * `accept:true` creates the pair (both claims) only when it answers a pending request from the
 * peer (§14 #4); otherwise it records the responder's own claim, which takes effect only if the
 * peer claims too. The response is delivered to the peer either way.
 */
export const handleRespondHandshake: Handler = async (state, req) => {
  const id = u32Field(req.msg, 'node_id');
  const peer = u32Field(req.msg, 'peer_id');
  const accept = boolField(req.msg, 'accept');
  await actingNode(state, req, id, challenge.respondHandshake(id, peer));
  await registeredNode(state, peer, 'peer');
  differentPeers(id, peer);
  const now = state.now();
  const pending = await state.store.takeHandshakeRequest(peer, id);
  const answered = pending !== undefined && pending.createdAt >= now - HANDSHAKE_TTL_MS;
  if (accept) {
    await state.store.addTrustClaim(id, peer, now);
    if (answered) await state.store.addTrustClaim(peer, id, now);
  }
  await state.store.addHandshakeResponse(
    { fromNodeId: id, toNodeId: peer, accept, createdAt: now },
    HANDSHAKE_INBOX_MAX,
  );
  state.notifyHandshake(peer);
  return { type: 'respond_handshake_ok', accept, peer_id: peer };
};
