import { formatAddr, type Addr } from '../protocol/address.js';
import type { JsonObject } from '../protocol/json.js';
import type { ConnectionInfo } from '../transport/types.js';

export interface InfoSources {
  address: Addr;
  hostname: string;
  startedAt: number;
  encrypt: boolean;
  identityPersisted: boolean;
  publicKey: string;
  owner: string;
  ports: number;
  connections: ConnectionInfo[];
  peers: { nodeId: number; endpoint: string; encrypted: boolean; authenticated: boolean; relay: boolean }[];
  tunnel: { bytesSent: number; bytesRecv: number; pktsSent: number; pktsRecv: number };
  /** Extra counters of this implementation (refused SYNs, drops, …); ignored by Go clients. */
  extra: JsonObject;
  /** What the transport stack holds (bound ports, dials, timers); shown as `resources` with the process's memory. */
  resources?: JsonObject;
}

const LIVE = new Set(['SYN_SENT', 'SYN_RECV', 'ESTABLISHED']);

/** One entry of `conn_list` (PROTOCOL.md §8.4). */
export function connEntry(c: ConnectionInfo): JsonObject {
  const s = c.stats;
  return {
    id: c.id,
    state: c.state,
    local_port: c.localPort,
    remote_addr: formatAddr(c.remote.addr),
    remote_port: c.remote.port,
    bytes_sent: s.bytesSent,
    bytes_recv: s.bytesRecv,
    segs_sent: s.segmentsSent,
    segs_recv: s.segmentsRecv,
    retransmits: s.retransmits,
    fast_retx: s.fastRetransmits,
    dup_acks: s.dupAcks,
    sack_sent: s.sackBlocksSent,
    sack_recv: s.sackBlocksRecv,
    srtt_ms: Math.round(s.srttMs * 1000) / 1000,
    rttvar_ms: Math.round(s.rttvarMs * 1000) / 1000,
    cong_win: s.cwnd,
    ssthresh: s.ssthresh,
    in_flight: s.inFlight,
    in_recovery: s.inRecovery,
    peer_recv_win: s.peerWindow,
    recv_win: s.recvWindow,
    ooo_buf: s.oooBytes,
    mss: s.mss,
    nagle: s.nagle,
    unacked: s.inFlight,
  };
}

/**
 * Connections by state, every state of `conn_list` counted (TIME_WAIT too), so that `info` and
 * `pilotctl connections` can be compared: `connections` counts only SYN_SENT, SYN_RECV and
 * ESTABLISHED, as the reference's does.
 */
export function connStates(connections: readonly ConnectionInfo[]): Record<string, number> {
  const states: Record<string, number> = {};
  for (const c of connections) states[c.state] = (states[c.state] ?? 0) + 1;
  return states;
}

/** Timers that keep the process running (unref'd ones are not counted). */
function activeTimers(): number {
  let n = 0;
  for (const r of process.getActiveResourcesInfo()) if (r === 'Timeout') n++;
  return n;
}

/** The InfoOK object (PROTOCOL.md §8.4); keys are sorted when encoded, as Go does. */
export function buildInfo(src: InfoSources): JsonObject {
  const peers = src.peers.map((p) => ({
    authenticated: p.authenticated,
    encrypted: p.encrypted,
    endpoint: p.endpoint,
    node_id: p.nodeId,
    relay: p.relay,
  }));
  return {
    node_id: src.address.node,
    address: formatAddr(src.address),
    hostname: src.hostname,
    uptime_secs: Math.floor((Date.now() - src.startedAt) / 1000),
    connections: src.connections.filter((c) => LIVE.has(c.state)).length,
    ports: src.ports,
    peers: peers.length,
    encrypted_peers: peers.filter((p) => p.encrypted).length,
    authenticated_peers: peers.filter((p) => p.authenticated).length,
    encrypt: src.encrypt,
    identity: src.identityPersisted,
    public_key: src.publicKey,
    owner: src.owner,
    bytes_sent: src.tunnel.bytesSent,
    bytes_recv: src.tunnel.bytesRecv,
    pkts_sent: src.tunnel.pktsSent,
    pkts_recv: src.tunnel.pktsRecv,
    peer_list: peers,
    conn_list: src.connections.map(connEntry),
    conn_states: connStates(src.connections),
    ...(src.resources !== undefined ? { resources: resourcesEntry(src.resources) } : {}),
    ...src.extra,
  };
}

function resourcesEntry(stack: JsonObject): JsonObject {
  const m = process.memoryUsage();
  return { ...stack, active_timers: activeTimers(), memory: { rss: m.rss, heap_used: m.heapUsed } };
}
