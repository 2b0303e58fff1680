import type { Logger } from '../log.js';
import { formatAddr } from '../protocol/address.js';
import type { JsonObject } from '../protocol/json.js';
import type { SignatureVerifier } from './auth.js';
import type { Liveness } from './liveness.js';
import type { KeyedRateLimiter } from '../rate-limit.js';
import type { RequestCounter } from './request-counter.js';
import { RequestError } from './request-error.js';
import { StoreConflictError } from './store-errors.js';
import type { NodeRecord, RegistryStore } from './store.js';
import { bindSession, type ConnectionSession } from './session-binding.js';

/** What every handler may use: the store and the server's volatile state. */
export interface RegistryState {
  readonly store: RegistryStore;
  readonly log: Logger;
  readonly liveness: Liveness;
  readonly verifier: SignatureVerifier;
  readonly registerLimiter: KeyedRateLimiter<string>;
  readonly adminToken: string | undefined;
  /** Refuse the reference's static signatures and unsigned registrations (`-require-replay-proof`). */
  readonly requireSignedBody: boolean;
  /** Every request dispatched to a handler (or refused as an unknown type). */
  readonly requests: RequestCounter;
  now(): number;
  /** Clock for task evidence ages (separate so that tests can move it without touching signatures). */
  taskNow(): number;
  /** Wakes the node's handshake watch channel, if any. */
  notifyHandshake(nodeId: number): void;
  /** A read-only standby of another registry: only the requests of standby-gate.ts are served. */
  readonly standby?: boolean;
  /** Called after a request changed the durable state (a replication primary then sends a snapshot). */
  stateChanged?(): void;
}

/** One decoded request and where it came from. */
export interface RequestInfo {
  readonly msg: JsonObject;
  readonly remoteIp: string;
  readonly remotePort: number;
  /** The connection's binding for session heartbeats (absent for requests not from a connection). */
  readonly session?: ConnectionSession;
}

export type Handler = (state: RegistryState, req: RequestInfo) => Promise<JsonObject>;

export const nodeAddress = (id: number): string => formatAddr({ network: 0, node: id });

/** A node that exists and is registered. */
export async function registeredNode(state: RegistryState, id: number, role = 'node'): Promise<NodeRecord> {
  const node = id === 0 ? undefined : await state.store.getNode(id);
  if (node === undefined || !node.registered) throw new RequestError('not_found', `${role} ${id} is not registered`);
  return node;
}

/**
 * Verifies that the request is signed by the registered node `id`: over its body, or over the
 * static challenge of PROTOCOL.md §5.3 (what Go daemons send) unless the registry requires signed
 * bodies or the node has signed a body before — a node that can do better is never again taken at
 * its replayable word.
 */
export async function actingNode(
  state: RegistryState,
  req: RequestInfo,
  id: number,
  challenge: string,
): Promise<NodeRecord> {
  const node = await registeredNode(state, id);
  const now = state.now();
  const form = await state.verifier.verify(node.publicKey, challenge, req.msg, now, {
    staticAllowed: staticAllowed(state, node),
    nodeId: id,
  });
  state.liveness.proven(id, now);
  if (form !== 'signed-body') return node;
  bindSession(req.session, id, node.publicKey);
  return markSignsBody(state, node);
}

/** Whether a static signature (or none, for `register`) may still stand for `node`. */
export function staticAllowed(state: RegistryState, node: NodeRecord | undefined): boolean {
  return !state.requireSignedBody && !(node?.signsBody ?? false);
}

/** Records, once, that the node signs request bodies. */
export async function markSignsBody(state: RegistryState, node: NodeRecord): Promise<NodeRecord> {
  if (node.signsBody || state.standby === true) return node;
  return state.store.updateNode(node.id, { signsBody: true });
}

/** A pair is effective only when each node has claimed trust in the other (§14 #3). */
export async function trustPairExists(state: RegistryState, a: number, b: number): Promise<boolean> {
  const [ab, ba] = await Promise.all([state.store.hasTrustClaim(a, b), state.store.hasTrustClaim(b, a)]);
  return ab && ba;
}

/** Whether `requester` may learn the endpoint of `target`. */
export async function mayResolve(state: RegistryState, requester: number, target: NodeRecord): Promise<boolean> {
  return target.isPublic || target.id === requester || trustPairExists(state, requester, target.id);
}

/** Sets the hostname; false when the store's uniqueness refused it (taken meanwhile by another process). */
export async function setHostname(state: RegistryState, id: number, hostname: string): Promise<boolean> {
  try {
    await state.store.updateNode(id, { hostname });
    return true;
  } catch (err) {
    if (err instanceof StoreConflictError && err.field === 'hostname') return false;
    throw err;
  }
}
