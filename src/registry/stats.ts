import { nodeAddress } from './context.js';
import type { NodeRecord } from './store.js';

/**
 * The registry dashboard's statistics (`GET /api/stats`, PROTOCOL.md §5.11): the reference's
 * fields in the reference's order. Unlike the reference, only public nodes are listed and only
 * trust pairs between two public nodes are drawn; the counts cover every registered node.
 */
export interface RegistryStats {
  total_nodes: number;
  active_nodes: number;
  total_trust_links: number;
  total_requests: number;
  unique_tags: number;
  task_executors: number;
  networks: NetworkStats[];
  nodes: NodeStats[];
  edges: TrustEdge[];
  uptime_secs: number;
}

export interface NetworkStats {
  id: number;
  name: string;
  members: number;
  online_members: number;
}

export interface NodeStats {
  address: string;
  tags: string[];
  online: boolean;
  trust_links: number;
  task_exec: boolean;
  polo_score: number;
  /** '' when none. Added after the reference's fields; only public nodes are listed at all. */
  hostname: string;
}

export interface TrustEdge {
  source: string;
  target: string;
}

export interface StatsInput {
  /** Registered nodes. */
  readonly nodes: readonly NodeRecord[];
  /** Effective trust pairs; pairs with an end that is not among `nodes` are ignored. */
  readonly trustPairs: readonly (readonly [number, number])[];
  isOnline(id: number): boolean;
  readonly totalRequests: number;
  readonly uptimeMs: number;
}

const byAddress = (a: { address: string }, b: { address: string }): number =>
  a.address < b.address ? -1 : a.address > b.address ? 1 : 0;

export function computeStats(input: StatsInput): RegistryStats {
  const byId = new Map(input.nodes.map((node) => [node.id, node]));
  const linksPerNode = new Map<number, number>();
  const edges: TrustEdge[] = [];
  let totalLinks = 0;
  for (const [a, b] of input.trustPairs) {
    const nodeA = byId.get(a);
    const nodeB = byId.get(b);
    if (nodeA === undefined || nodeB === undefined || a === b) continue;
    totalLinks++;
    linksPerNode.set(a, (linksPerNode.get(a) ?? 0) + 1);
    linksPerNode.set(b, (linksPerNode.get(b) ?? 0) + 1);
    if (nodeA.isPublic && nodeB.isPublic)
      edges.push({ source: nodeAddress(Math.min(a, b)), target: nodeAddress(Math.max(a, b)) });
  }

  const tags = new Set<string>();
  const nodes: NodeStats[] = [];
  let online = 0;
  let taskExecutors = 0;
  for (const node of input.nodes) {
    const isOnline = input.isOnline(node.id);
    if (isOnline) online++;
    if (node.taskExec) taskExecutors++;
    for (const tag of node.tags) tags.add(tag);
    if (!node.isPublic) continue;
    nodes.push({
      address: nodeAddress(node.id),
      tags: [...node.tags],
      online: isOnline,
      trust_links: linksPerNode.get(node.id) ?? 0,
      task_exec: node.taskExec,
      polo_score: node.poloScore,
      hostname: node.hostname,
    });
  }
  nodes.sort(byAddress);
  edges.sort(
    (x, y) =>
      byAddress({ address: x.source }, { address: y.source }) ||
      byAddress({ address: x.target }, { address: y.target }),
  );

  return {
    total_nodes: input.nodes.length,
    active_nodes: online,
    total_trust_links: totalLinks,
    total_requests: input.totalRequests,
    unique_tags: tags.size,
    task_executors: taskExecutors,
    networks: [{ id: 0, name: 'backbone', members: input.nodes.length, online_members: online }],
    nodes,
    edges,
    uptime_secs: Math.max(0, Math.floor(input.uptimeMs / 1000)),
  };
}
