import { rfc3339Nano } from '../protocol/go-time.js';
import type { JsonObject, JsonValue } from '../protocol/json.js';
import {
  EXT_BEACONS,
  EXT_DEREGISTERED,
  EXT_HANDSHAKE_DELIVERED,
  EXT_SIGNS_BODY,
  EXT_TASK_ACCEPTANCES,
  EXT_TASK_EVIDENCE,
  EXT_TRUST_CLAIMS,
  NEXT_NETWORK_ID,
} from './snapshot-format.js';
import type { BeaconRecord, HandshakeResponse, NodeRecord, PendingHandshakeRequest, StoreContents } from './store.js';

/** Volatile state a live registry adds to its snapshot (a replication primary). */
export interface LiveView {
  readonly now: number;
  /** Unix ms the node was last seen, when known. */
  lastSeen(id: number): number | undefined;
  readonly beacons: readonly BeaconRecord[];
}

export const formatTime = (ms: number): string => rfc3339Nano(new Date(ms));

/** A node as the reference's `NodeInfo` (fields in its declaration order, empty ones left out). */
function nodeObject(n: NodeRecord, lastSeen: number | undefined): JsonObject {
  const o: JsonObject = { id: n.id };
  if (n.owner !== '') o.owner = n.owner;
  o.public_key = n.publicKey;
  if (n.realAddr !== '') o.real_addr = n.realAddr;
  o.networks = n.registered ? [0] : [];
  if (n.isPublic) o.public = true;
  if (lastSeen !== undefined) o.last_seen = formatTime(lastSeen);
  if (n.hostname !== '') o.hostname = n.hostname;
  if (n.tags.length > 0) o.tags = [...n.tags];
  if (n.poloScore !== 0) o.polo_score = n.poloScore;
  if (n.taskExec) o.task_exec = true;
  if (n.signsBody) o[EXT_SIGNS_BODY] = true;
  return o;
}

function inbox(requests: readonly PendingHandshakeRequest[], delivered: boolean): JsonObject {
  const out: JsonObject = {};
  for (const r of requests) {
    if (r.delivered !== delivered) continue;
    const list = (out[String(r.toNodeId)] ??= []) as JsonObject[];
    list.push({ from_node_id: r.fromNodeId, justification: r.justification, timestamp: formatTime(r.createdAt) });
  }
  return out;
}

function responseLists(responses: readonly HandshakeResponse[]): JsonObject {
  const out: JsonObject = {};
  for (const r of responses) {
    const list = (out[String(r.toNodeId)] ??= []) as JsonObject[];
    list.push({ from_node_id: r.fromNodeId, accept: r.accept, timestamp: formatTime(r.createdAt) });
  }
  return out;
}

/** `"<min>:<max>"` for every pair claimed both ways. */
function effectivePairs(c: StoreContents): string[] {
  const claims = new Set(c.trustClaims.map((t) => `${t.from}:${t.to}`));
  return c.trustClaims.filter((t) => t.from < t.to && claims.has(`${t.to}:${t.from}`)).map((t) => `${t.from}:${t.to}`);
}

const setIfAny = (out: JsonObject, key: string, value: JsonObject | JsonValue[]): void => {
  if (Array.isArray(value) ? value.length > 0 : Object.keys(value).length > 0) out[key] = value;
};

/**
 * The store as the reference's JSON object (PROTOCOL.md §5.9) plus our `pilot_*` keys (see
 * snapshot-format.ts). With `live`, nodes carry `last_seen` and the beacons are included.
 */
export function exportSnapshot(c: StoreContents, live?: LiveView): JsonObject {
  const nodes: JsonObject = {};
  const deregistered: JsonObject = {};
  const keyIndex: JsonObject = {};
  const members: number[] = [];
  for (const n of c.nodes) {
    keyIndex[n.publicKey] = n.id;
    if (n.registered) {
      nodes[String(n.id)] = nodeObject(n, live?.lastSeen(n.id));
      members.push(n.id);
    } else {
      deregistered[String(n.id)] = nodeObject(n, undefined);
    }
  }
  const out: JsonObject = {
    next_node: c.nextNodeId,
    next_net: NEXT_NETWORK_ID,
    nodes,
    networks: {
      '0': { id: 0, name: 'backbone', join_rule: 'open', members, created: formatTime(c.backboneCreatedAt) },
    },
  };
  setIfAny(out, 'trust_pairs', effectivePairs(c));
  setIfAny(out, 'pub_key_idx', keyIndex);
  setIfAny(out, 'handshake_inbox', inbox(c.handshakeRequests, false));
  setIfAny(out, 'handshake_responses', responseLists(c.handshakeResponses));
  setIfAny(out, EXT_DEREGISTERED, deregistered);
  setIfAny(
    out,
    EXT_TRUST_CLAIMS,
    c.trustClaims.map((t) => `${t.from}:${t.to}`),
  );
  setIfAny(out, EXT_HANDSHAKE_DELIVERED, inbox(c.handshakeRequests, true));
  setIfAny(
    out,
    EXT_TASK_EVIDENCE,
    c.taskEvidence.map(
      (e): JsonObject => ({
        task_id: e.taskId,
        kind: e.kind,
        submitter_id: e.submitter,
        executor_id: e.executor,
        submitter_delta: e.submitterDelta,
        executor_delta: e.executorDelta,
        applied: formatTime(e.at),
      }),
    ),
  );
  setIfAny(
    out,
    EXT_TASK_ACCEPTANCES,
    c.taskAcceptances.map(
      (a): JsonObject => ({
        task_id: a.taskId,
        submitter_id: a.submitter,
        executor_id: a.executor,
        seen: formatTime(a.seenAt),
      }),
    ),
  );
  if (live !== undefined) {
    out[EXT_BEACONS] = live.beacons.map(
      (b): JsonObject => ({ id: b.id, addr: b.addr, ttl_ms: Math.max(0, b.expiresAt - live.now) }),
    );
  }
  return out;
}
