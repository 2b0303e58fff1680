import { fromBase64 } from '../crypto/base64.js';
import { ED25519_PUBLIC_KEY_SIZE } from '../crypto/ed25519.js';
import type { JsonObject } from '../protocol/json.js';
import { isValidTaskId } from '../protocol/tasksubmit.js';
import { splitHostPort } from '../protocol/host-port.js';
import { BEACON_TTL_MS } from './handlers-misc.js';
import { HANDSHAKE_INBOX_MAX, MAX_JUSTIFICATION } from './handlers-trust.js';
import {
  EXT_BEACONS,
  EXT_DEREGISTERED,
  EXT_HANDSHAKE_DELIVERED,
  EXT_SIGNS_BODY,
  EXT_LAST_SEEN,
  EXT_TASK_ACCEPTANCES,
  EXT_TASK_EVIDENCE,
  EXT_TRUST_CLAIMS,
  SNAPSHOT_LIMITS as LIMITS,
  type ParsedSnapshot,
} from './snapshot-format.js';
import {
  readArray,
  readIdKey,
  readIdPair,
  readInteger,
  readMapEntries,
  readNodeId,
  readObject,
  readOptionalBool,
  readOptionalString,
  readString,
  readTime,
  readU32,
  snapshotError,
} from './snapshot-read.js';
import type {
  BeaconRecord,
  HandshakeResponse,
  NodeRecord,
  PendingHandshakeRequest,
  TaskAcceptance,
  TaskEvidence,
  TrustClaim,
} from './store.js';
import { hostnameError, MAX_TAGS, normalizeTags } from './validation.js';

const keyPath = (map: string, key: string): string => `${map}[${JSON.stringify(key.slice(0, 64))}]`;

function required(top: JsonObject, key: string): unknown {
  if (!Object.hasOwn(top, key)) throw snapshotError(key, 'missing');
  return top[key];
}

function readPublicKey(value: unknown, path: string): string {
  const text = readString(value, path, 64);
  const raw = fromBase64(text);
  if (raw === undefined || raw.length !== ED25519_PUBLIC_KEY_SIZE)
    throw snapshotError(path, 'not a standard-base64 32-byte Ed25519 key');
  return text;
}

/** Nodes by id with the store's uniqueness rules (key, hostname) checked as they are added. */
class NodeTable {
  readonly byId = new Map<number, NodeRecord>();
  readonly #byKey = new Map<string, number>();
  readonly #byHostname = new Map<string, number>();

  add(node: NodeRecord, path: string): void {
    if (this.byId.has(node.id)) throw snapshotError(path, `node ${node.id} appears twice`);
    const keyHolder = this.#byKey.get(node.publicKey);
    if (keyHolder !== undefined) throw snapshotError(path, `public key of node ${node.id} is also node ${keyHolder}'s`);
    const nameHolder = node.hostname === '' ? undefined : this.#byHostname.get(node.hostname);
    if (nameHolder !== undefined)
      throw snapshotError(path, `hostname "${node.hostname}" of node ${node.id} is also node ${nameHolder}'s`);
    this.byId.set(node.id, node);
    this.#byKey.set(node.publicKey, node.id);
    if (node.hostname !== '') this.#byHostname.set(node.hostname, node.id);
  }

  idOfKey(publicKey: string): number | undefined {
    return this.#byKey.get(publicKey);
  }
}

function readTags(value: unknown, path: string): string[] {
  const tags = readArray(value, path, MAX_TAGS).map((t, i) => readString(t, `${path}[${i}]`, 33));
  const result = normalizeTags(tags);
  if ('error' in result) throw snapshotError(path, result.error);
  return result.tags;
}

function readNode(
  value: unknown,
  path: string,
  key: string,
  registered: boolean,
): { node: NodeRecord; lastSeen: number | undefined } {
  const expectedId = readIdKey(key, path, 1, 0xffffffff);
  const o = readObject(value, path);
  const id = readNodeId(o.id, `${path}.id`);
  if (id !== expectedId) throw snapshotError(`${path}.id`, `${id} does not match its key "${key}"`);
  const realAddr = readOptionalString(o.real_addr, `${path}.real_addr`, LIMITS.addr);
  if (realAddr !== '' && splitHostPort(realAddr) === undefined)
    throw snapshotError(`${path}.real_addr`, `"${realAddr}" is not host:port`);
  for (const [i, n] of readArray(o.networks, `${path}.networks`, LIMITS.networksPerNode).entries())
    readInteger(n, `${path}.networks[${i}]`, 0, 0xffff);
  const hostname = readOptionalString(o.hostname, `${path}.hostname`, 253);
  const hostnameProblem = hostnameError(hostname);
  if (hostnameProblem !== undefined) throw snapshotError(`${path}.hostname`, hostnameProblem);
  const node: NodeRecord = {
    id,
    publicKey: readPublicKey(o.public_key, `${path}.public_key`),
    owner: readOptionalString(o.owner, `${path}.owner`, LIMITS.owner),
    realAddr,
    isPublic: readOptionalBool(o.public, `${path}.public`),
    hostname,
    tags: readTags(o.tags, `${path}.tags`),
    taskExec: readOptionalBool(o.task_exec, `${path}.task_exec`),
    poloScore:
      o.polo_score === undefined
        ? 0
        : readInteger(o.polo_score, `${path}.polo_score`, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER),
    registered,
    signsBody: readOptionalBool(o[EXT_SIGNS_BODY], `${path}.${EXT_SIGNS_BODY}`),
  };
  return { node, lastSeen: o.last_seen === undefined ? undefined : readTime(o.last_seen, `${path}.last_seen`) };
}

/**
 * Keys of deregistered (or reaped) nodes stay in the reference's index so that their id can be
 * reclaimed; they become deregistered records. An older key of a node that has rotated since
 * points at an id that already has a key and is skipped.
 */
function readKeyIndex(value: unknown, nodes: NodeTable): void {
  for (const [key, v] of readMapEntries(value, 'pub_key_idx', LIMITS.nodes * 2)) {
    const path = keyPath('pub_key_idx', key);
    readPublicKey(key, path);
    const id = readNodeId(v, path);
    const holder = nodes.idOfKey(key);
    if (holder !== undefined) {
      if (holder !== id) throw snapshotError(path, `maps node ${holder}'s key to node ${id}`);
      continue;
    }
    if (nodes.byId.has(id)) continue;
    nodes.add(
      {
        id,
        publicKey: key,
        owner: '',
        realAddr: '',
        isPublic: false,
        hostname: '',
        tags: [],
        taskExec: false,
        poloScore: 0,
        registered: false,
        signsBody: false,
      },
      path,
    );
  }
}

/** Checks every network; only the backbone exists here, so others are counted and left out. */
function readNetworks(value: unknown, now: number): { backboneCreatedAt: number; dropped: number } {
  let backboneCreatedAt: number | undefined;
  let dropped = 0;
  for (const [key, v] of readMapEntries(value, 'networks', LIMITS.networks)) {
    const path = keyPath('networks', key);
    const id = readIdKey(key, path, 0, 0xffff);
    const o = readObject(v, path);
    if (readInteger(o.id, `${path}.id`, 0, 0xffff) !== id)
      throw snapshotError(`${path}.id`, `does not match its key "${key}"`);
    const name = readString(o.name, `${path}.name`, LIMITS.networkName);
    readString(o.join_rule, `${path}.join_rule`, 32);
    readOptionalString(o.token, `${path}.token`, LIMITS.networkToken);
    for (const [i, m] of readArray(o.members, `${path}.members`, LIMITS.nodes).entries())
      readNodeId(m, `${path}.members[${i}]`);
    const created = readTime(o.created, `${path}.created`);
    if (id !== 0) {
      dropped++;
    } else {
      if (name !== 'backbone') throw snapshotError(`${path}.name`, `network 0 must be "backbone", not "${name}"`);
      backboneCreatedAt = created;
    }
  }
  return { backboneCreatedAt: backboneCreatedAt ?? now, dropped };
}

/** A reference pair is a claim in each direction; our claims list adds the one-sided ones. */
function readTrust(pairs: unknown, claims: unknown, now: number): TrustClaim[] {
  const seen = new Map<string, TrustClaim>();
  const add = (from: number, to: number): void => {
    const key = `${from}:${to}`;
    if (!seen.has(key)) seen.set(key, { from, to, createdAt: now });
  };
  readArray(pairs, 'trust_pairs', LIMITS.trustEntries).forEach((v, i) => {
    const [a, b] = readIdPair(v, `trust_pairs[${i}]`);
    add(a, b);
    add(b, a);
  });
  readArray(claims, EXT_TRUST_CLAIMS, LIMITS.trustEntries).forEach((v, i) => {
    const [from, to] = readIdPair(v, `${EXT_TRUST_CLAIMS}[${i}]`);
    add(from, to);
  });
  return [...seen.values()];
}

function readInbox(value: unknown, name: string, delivered: boolean, seen: Set<string>): PendingHandshakeRequest[] {
  const out: PendingHandshakeRequest[] = [];
  for (const [key, v] of readMapEntries(value, name, LIMITS.inboxes)) {
    const path = keyPath(name, key);
    const toNodeId = readIdKey(key, path, 1, 0xffffffff);
    readArray(v, path, HANDSHAKE_INBOX_MAX).forEach((item, i) => {
      const p = `${path}[${i}]`;
      const o = readObject(item, p);
      const fromNodeId = readNodeId(o.from_node_id, `${p}.from_node_id`);
      const justification = readOptionalString(o.justification, `${p}.justification`, MAX_JUSTIFICATION);
      const createdAt = readTime(o.timestamp, `${p}.timestamp`);
      const pair = `${fromNodeId}>${toNodeId}`;
      if (seen.has(pair))
        throw snapshotError(p, `a second pending request from node ${fromNodeId} to node ${toNodeId}`);
      seen.add(pair);
      out.push({ fromNodeId, toNodeId, justification, createdAt, delivered });
    });
  }
  return out;
}

function readResponses(value: unknown): HandshakeResponse[] {
  const out: HandshakeResponse[] = [];
  for (const [key, v] of readMapEntries(value, 'handshake_responses', LIMITS.inboxes)) {
    const path = keyPath('handshake_responses', key);
    const toNodeId = readIdKey(key, path, 1, 0xffffffff);
    const items = readArray(v, path, LIMITS.responsesPerTarget).map((item, i): HandshakeResponse => {
      const p = `${path}[${i}]`;
      const o = readObject(item, p);
      const fromNodeId = readNodeId(o.from_node_id, `${p}.from_node_id`);
      return {
        fromNodeId,
        toNodeId,
        accept: readOptionalBool(o.accept, `${p}.accept`),
        createdAt: readTime(o.timestamp, `${p}.timestamp`),
      };
    });
    out.push(...items.slice(-HANDSHAKE_INBOX_MAX));
  }
  return out;
}

function readEvidence(value: unknown): TaskEvidence[] {
  const seen = new Set<string>();
  return readArray(value, EXT_TASK_EVIDENCE, LIMITS.taskEvidence).map((item, i): TaskEvidence => {
    const p = `${EXT_TASK_EVIDENCE}[${i}]`;
    const o = readObject(item, p);
    const taskId = readString(o.task_id, `${p}.task_id`, 36);
    if (!isValidTaskId(taskId)) throw snapshotError(`${p}.task_id`, `"${taskId}" is not a task id`);
    const kind = readString(o.kind, `${p}.kind`, 8);
    if (kind !== 'receipt' && kind !== 'expiry')
      throw snapshotError(`${p}.kind`, `"${kind}" is neither "receipt" nor "expiry"`);
    const submitter = readNodeId(o.submitter_id, `${p}.submitter_id`);
    const executor = readNodeId(o.executor_id, `${p}.executor_id`);
    const key = `${taskId}|${submitter}|${executor}`;
    if (seen.has(key))
      throw snapshotError(p, `evidence for task ${taskId} between ${submitter} and ${executor} appears twice`);
    seen.add(key);
    return {
      taskId,
      kind,
      submitter,
      executor,
      submitterDelta: readInteger(o.submitter_delta, `${p}.submitter_delta`, -LIMITS.scoreDelta, LIMITS.scoreDelta),
      executorDelta: readInteger(o.executor_delta, `${p}.executor_delta`, -LIMITS.scoreDelta, LIMITS.scoreDelta),
      at: readTime(o.applied, `${p}.applied`),
    };
  });
}

function readAcceptances(value: unknown): TaskAcceptance[] {
  const seen = new Set<string>();
  return readArray(value, EXT_TASK_ACCEPTANCES, LIMITS.taskAcceptances).map((item, i): TaskAcceptance => {
    const p = `${EXT_TASK_ACCEPTANCES}[${i}]`;
    const o = readObject(item, p);
    const taskId = readString(o.task_id, `${p}.task_id`, 36);
    if (!isValidTaskId(taskId)) throw snapshotError(`${p}.task_id`, `"${taskId}" is not a task id`);
    const submitter = readNodeId(o.submitter_id, `${p}.submitter_id`);
    const executor = readNodeId(o.executor_id, `${p}.executor_id`);
    const key = `${taskId}|${submitter}|${executor}`;
    if (seen.has(key))
      throw snapshotError(p, `acceptance of task ${taskId} between ${submitter} and ${executor} appears twice`);
    seen.add(key);
    return { taskId, submitter, executor, seenAt: readTime(o.seen, `${p}.seen`) };
  });
}

function readBeacons(value: unknown, now: number): BeaconRecord[] {
  return readArray(value, EXT_BEACONS, LIMITS.beacons).map((item, i): BeaconRecord => {
    const p = `${EXT_BEACONS}[${i}]`;
    const o = readObject(item, p);
    const addr = readString(o.addr, `${p}.addr`, LIMITS.addr);
    if (addr === '') throw snapshotError(`${p}.addr`, 'empty');
    return {
      id: readNodeId(o.id, `${p}.id`),
      addr,
      expiresAt: now + readInteger(o.ttl_ms, `${p}.ttl_ms`, 0, BEACON_TTL_MS),
    };
  });
}

/**
 * Validates a §5.9 object (ours or a Go registry's) completely and converts it for
 * `RegistryStore.replaceState`. Throws PilotError `invalid_argument` naming the first bad field;
 * nothing is applied by this function. Unknown keys are ignored, as Go's decoder does.
 */
export function parseSnapshot(value: unknown, now: number): ParsedSnapshot {
  const top = readObject(value, 'snapshot');
  const nextNode = readU32(required(top, 'next_node'), 'next_node');
  readInteger(required(top, 'next_net'), 'next_net', 0, 0xffff);
  const nodes = new NodeTable();
  const lastSeen = new Map<number, number>();
  for (const [key, v] of readMapEntries(required(top, 'nodes'), 'nodes', LIMITS.nodes)) {
    const path = keyPath('nodes', key);
    const entry = readNode(v, path, key, true);
    nodes.add(entry.node, path);
    if (entry.lastSeen !== undefined) lastSeen.set(entry.node.id, entry.lastSeen);
  }
  for (const [key, v] of readMapEntries(top[EXT_DEREGISTERED], EXT_DEREGISTERED, LIMITS.nodes)) {
    const path = keyPath(EXT_DEREGISTERED, key);
    nodes.add(readNode(v, path, key, false).node, path);
  }
  readKeyIndex(top.pub_key_idx, nodes);
  const networks = readNetworks(required(top, 'networks'), now);
  const pending = new Set<string>();
  const handshakeRequests = [
    ...readInbox(top.handshake_inbox, 'handshake_inbox', false, pending),
    ...readInbox(top[EXT_HANDSHAKE_DELIVERED], EXT_HANDSHAKE_DELIVERED, true, pending),
  ];
  const sortedNodes = [...nodes.byId.values()].sort((a, b) => a.id - b.id);
  const maxId = sortedNodes.at(-1)?.id ?? 0;
  return {
    contents: {
      nextNodeId: Math.max(nextNode, maxId + 1, 1),
      backboneCreatedAt: networks.backboneCreatedAt,
      nodes: sortedNodes,
      trustClaims: readTrust(top.trust_pairs, top[EXT_TRUST_CLAIMS], now),
      handshakeRequests,
      handshakeResponses: readResponses(top.handshake_responses),
      taskEvidence: readEvidence(top[EXT_TASK_EVIDENCE]),
      taskAcceptances: readAcceptances(top[EXT_TASK_ACCEPTANCES]),
    },
    lastSeen,
    beacons: readBeacons(top[EXT_BEACONS], now),
    droppedNetworks: networks.dropped,
  };
}

/** What a replication heartbeat frame carries besides its type (our extension; Go sends none). */
export function parseLiveFields(
  msg: JsonObject,
  now: number,
): { lastSeen: Map<number, number>; beacons: BeaconRecord[] } {
  const lastSeen = new Map<number, number>();
  for (const [key, v] of readMapEntries(msg[EXT_LAST_SEEN], EXT_LAST_SEEN, LIMITS.nodes)) {
    const path = keyPath(EXT_LAST_SEEN, key);
    lastSeen.set(readIdKey(key, path, 1, 0xffffffff), readTime(v, path));
  }
  return { lastSeen, beacons: readBeacons(msg[EXT_BEACONS], now) };
}
