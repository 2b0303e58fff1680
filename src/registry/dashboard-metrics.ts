import { BlockList, isIP } from 'node:net';
import type { IncomingHttpHeaders } from 'node:http';
import type { RegistryStats } from './stats.js';

/**
 * `GET /metrics`: Prometheus text exposition, for loopback clients only. The reference decides
 * "loopback" from a client-supplied `X-Real-IP` header (PROTOCOL.md §14 #17); here only the
 * socket's peer address counts, so no header can open the endpoint to a remote client.
 */

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/** 127.0.0.0/8, ::1 and IPv4-mapped 127.x (dual-stack sockets). */
export function isLoopbackAddress(address: string | undefined): boolean {
  if (address === undefined) return false;
  const family = isIP(address);
  if (family === 0) return false;
  try {
    return LOOPBACK.check(address, family === 4 ? 'ipv4' : 'ipv6');
  } catch {
    return false;
  }
}

export interface RequestOrigin {
  readonly socket: { readonly remoteAddress?: string | undefined };
  /** Never consulted: forwarding headers are whatever the client wants them to be. */
  readonly headers: IncomingHttpHeaders;
}

export function isLocalRequest(req: RequestOrigin): boolean {
  return isLoopbackAddress(req.socket.remoteAddress);
}

const escapeLabel = (value: string): string => value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

export function renderMetrics(
  stats: RegistryStats,
  requestsByType: ReadonlyMap<string, number>,
  handshakesRelayed: number,
): string {
  const lines: string[] = [];
  const metric = (name: string, type: 'gauge' | 'counter', help: string, samples: [string, number][]): void => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) lines.push(`${name}${labels} ${value}`);
  };
  metric('pilot_registry_nodes', 'gauge', 'Registered nodes.', [['', stats.total_nodes]]);
  metric('pilot_registry_nodes_online', 'gauge', 'Registered nodes seen within the last 3 minutes.', [
    ['', stats.active_nodes],
  ]);
  metric('pilot_registry_nodes_public', 'gauge', 'Registered nodes that are public.', [['', stats.nodes.length]]);
  metric('pilot_registry_trust_links', 'gauge', 'Trust pairs between registered nodes.', [
    ['', stats.total_trust_links],
  ]);
  metric('pilot_registry_task_executors', 'gauge', 'Registered nodes that accept tasks.', [['', stats.task_executors]]);
  metric('pilot_registry_unique_tags', 'gauge', 'Distinct tags across registered nodes.', [['', stats.unique_tags]]);
  // The request and relay metrics come from the live counters (the stats may be up to a second old).
  const requests = [...requestsByType.values()].reduce((sum, n) => sum + n, 0);
  metric('pilot_registry_requests_total', 'counter', 'Requests handled since start.', [['', requests]]);
  metric(
    'pilot_registry_requests_by_type_total',
    'counter',
    'Requests handled since start, by message type.',
    [...requestsByType].map(([type, count]): [string, number] => [`{type="${escapeLabel(type)}"}`, count]),
  );
  metric('pilot_registry_handshakes_relayed_total', 'counter', 'Handshake requests and answers relayed since start.', [
    ['', handshakesRelayed],
  ]);
  metric('pilot_registry_uptime_seconds', 'gauge', 'Seconds since the registry started.', [['', stats.uptime_secs]]);
  return `${lines.join('\n')}\n`;
}
