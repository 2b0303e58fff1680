import { PilotError } from '../errors.js';
import { isJsonObject, type JsonObject, type JsonValue } from './json.js';

/** One tunnel peer in `InfoOK.peer_list` (§8.4). */
export interface PeerInfo {
  authenticated: boolean;
  encrypted: boolean;
  /** UDP `ip:port`. */
  endpoint: string;
  node_id: number;
}

/** One connection in `InfoOK.conn_list` (§8.4). */
export interface ConnInfo {
  id: number;
  state: string;
  local_port: number;
  remote_addr: string;
  remote_port: number;
  bytes_sent: number;
  bytes_recv: number;
  segs_sent: number;
  segs_recv: number;
  retransmits: number;
  fast_retx: number;
  sack_sent: number;
  sack_recv: number;
  dup_acks: number;
  cong_win: number;
  ssthresh: number;
  in_flight: number;
  in_recovery: boolean;
  unacked: number;
  ooo_buf: number;
  peer_recv_win: number;
  recv_win: number;
  srtt_ms: number;
  rttvar_ms: number;
  /** Largest payload per segment sent (pilot-ts; 0 from a daemon that does not report it). */
  mss: number;
  /** Nagle on for this connection (pilot-ts; absent from other daemons). */
  nagle?: boolean;
}

/** The daemon's InfoOK object (§8.4), keys as on the wire. */
export interface DaemonInfo {
  node_id: number;
  address: string;
  hostname: string;
  uptime_secs: number;
  connections: number;
  ports: number;
  peers: number;
  encrypted_peers: number;
  authenticated_peers: number;
  encrypt: boolean;
  identity: boolean;
  public_key: string;
  owner: string;
  bytes_sent: number;
  bytes_recv: number;
  pkts_sent: number;
  pkts_recv: number;
  peer_list: PeerInfo[];
  conn_list: ConnInfo[];
  /** Counters of the daemon's built-in services (pilot-ts daemons only). */
  services?: JsonObject;
  /** Tunnel datagrams sent, by kind: PILS, PILM (batches to pilot-ts peers), PILA, … (pilot-ts daemons only). */
  frames_sent?: Record<string, number>;
  /**
   * Connections by state, every state of `conn_list` counted (TIME_WAIT too), whereas `connections`
   * counts only SYN_SENT, SYN_RECV and ESTABLISHED (pilot-ts daemons only).
   */
  conn_states?: Record<string, number>;
  /** The daemon's IPC extensions: `dial_data`, `dial_cancel`, `error_codes` (pilot-ts daemons only). */
  ipc_features?: string[];
  /** What the transport holds: `bound_ports`, `dials`, `timers`, `active_timers`, `memory` (pilot-ts daemons only). */
  resources?: JsonObject;
  /** What the IPC clients hold: `clients`, `conns`, `listeners`, `dials`, `lingering` (pilot-ts daemons only). */
  ipc?: JsonObject;
}

/** A trust request waiting for approval (§8.3 Pending). */
export interface PendingEntry {
  node_id: number;
  justification: string;
  public_key: string;
  /** Unix seconds. */
  received_at: number;
}

/** A trusted peer (§8.3 Trusted). */
export interface TrustedEntry {
  node_id: number;
  network: number;
  public_key: string;
  mutual: boolean;
  /** Unix seconds. */
  approved_at: number;
}

/** A handshake request this node sent (pilot-ts daemons only). */
export interface OutgoingEntry {
  node_id: number;
  /** Unix seconds. */
  sent_at: number;
  state: 'sent' | 'accepted' | 'rejected';
  answered_at?: number;
  /** The peer's reason for a direct rejection. */
  reason?: string;
}

const num = (v: JsonValue | undefined): number => (typeof v === 'number' ? v : 0);
const str = (v: JsonValue | undefined): string => (typeof v === 'string' ? v : '');
const bool = (v: JsonValue | undefined): boolean => v === true;
const objects = (v: JsonValue | undefined): JsonObject[] => (Array.isArray(v) ? v.filter(isJsonObject) : []);

type Shape<T> = { [K in keyof T]: (v: JsonValue | undefined) => T[K] };

/**
 * Fields missing from a daemon's reply (an older or newer daemon) get zero values instead of
 * failing the call; only the identity fields are required.
 */
function pick<T>(obj: JsonObject, shape: Shape<T>): T {
  const out: Partial<T> = {};
  for (const key of Object.keys(shape) as Array<keyof T & string>) out[key] = shape[key](obj[key]);
  return out as T;
}

const PEER: Shape<PeerInfo> = { authenticated: bool, encrypted: bool, endpoint: str, node_id: num };

const CONN: Shape<ConnInfo> = {
  id: num,
  state: str,
  local_port: num,
  remote_addr: str,
  remote_port: num,
  bytes_sent: num,
  bytes_recv: num,
  segs_sent: num,
  segs_recv: num,
  retransmits: num,
  fast_retx: num,
  sack_sent: num,
  sack_recv: num,
  dup_acks: num,
  cong_win: num,
  ssthresh: num,
  in_flight: num,
  in_recovery: bool,
  unacked: num,
  ooo_buf: num,
  peer_recv_win: num,
  recv_win: num,
  srtt_ms: num,
  rttvar_ms: num,
  mss: num,
};

const INFO: Shape<DaemonInfo> = {
  node_id: num,
  address: str,
  hostname: str,
  uptime_secs: num,
  connections: num,
  ports: num,
  peers: num,
  encrypted_peers: num,
  authenticated_peers: num,
  encrypt: bool,
  identity: bool,
  public_key: str,
  owner: str,
  bytes_sent: num,
  bytes_recv: num,
  pkts_sent: num,
  pkts_recv: num,
  // Keys a pilot-ts daemon adds to a peer (its path: relay) are kept as they came.
  peer_list: (v) => objects(v).map((p) => ({ ...p, ...pick(p, PEER) })),
  conn_list: (v) =>
    objects(v).map((c) => ({ ...pick(c, CONN), ...(typeof c.nagle === 'boolean' ? { nagle: c.nagle } : {}) })),
};

export function parseDaemonInfo(json: JsonObject): DaemonInfo {
  if (typeof json.node_id !== 'number' || typeof json.address !== 'string') {
    throw new PilotError('protocol', 'daemon Info reply lacks node_id or address');
  }
  // Keys a pilot-ts daemon adds (service counters, refusals) are kept as they came.
  const info = { ...json, ...pick(json, INFO) } as DaemonInfo;
  const features = json.ipc_features;
  if (features !== undefined) {
    if (Array.isArray(features)) info.ipc_features = features.filter((f): f is string => typeof f === 'string');
    else delete info.ipc_features;
  }
  return info;
}

export function parsePending(json: JsonObject): PendingEntry[] {
  return objects(json.pending).map((p) =>
    pick<PendingEntry>(p, { node_id: num, justification: str, public_key: str, received_at: num }),
  );
}

export function parseOutgoing(json: JsonObject): OutgoingEntry[] {
  return objects(json.outgoing).map((o) => {
    const state = o.state === 'accepted' || o.state === 'rejected' ? o.state : 'sent';
    const entry: OutgoingEntry = { node_id: num(o.node_id), sent_at: num(o.sent_at), state };
    if (typeof o.answered_at === 'number') entry.answered_at = o.answered_at;
    if (typeof o.reason === 'string') entry.reason = o.reason;
    return entry;
  });
}

export function parseTrusted(json: JsonObject): TrustedEntry[] {
  return objects(json.trusted).map((t) =>
    pick<TrustedEntry>(t, { node_id: num, network: num, public_key: str, mutual: bool, approved_at: num }),
  );
}
