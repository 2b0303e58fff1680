import { PilotError } from '../../errors.js';
import { isJsonObject, type JsonObject, type JsonValue } from '../../protocol/json.js';
import { maxPositionals, parseConnId, positional, stringFlag } from '../args.js';
import { withDriver, type CommandSpec } from '../command.js';
import type { CliContext } from '../context.js';
import { formatTable, toJson } from '../output.js';
import { named } from '../names.js';

async function fetchInfo(ctx: CliContext): Promise<JsonObject> {
  const info = toJson(await withDriver(ctx, (d) => d.info()));
  if (!isJsonObject(info)) throw new PilotError('internal', 'daemon returned an invalid info reply');
  return info;
}

function list(info: JsonObject, key: string): JsonObject[] {
  const v = info[key];
  return Array.isArray(v) ? v.filter(isJsonObject) : [];
}

const s = (v: JsonValue | undefined): string =>
  v === undefined || v === null ? '-' : typeof v === 'string' ? v : JSON.stringify(v);

function bytes(v: JsonValue | undefined): string {
  if (typeof v !== 'number') return s(v);
  if (v < 1024) return `${v} B`;
  if (v < 1024 * 1024) return `${(v / 1024).toFixed(1)} KiB`;
  if (v < 1024 ** 3) return `${(v / 1024 / 1024).toFixed(1)} MiB`;
  return `${(v / 1024 ** 3).toFixed(2)} GiB`;
}

/** `127.0.0.1:9000 (reachable, signed-body signatures, push)` from the info's `registry` object. */
export function registryText(r: JsonObject): string {
  const state =
    r.reachable === false ? `unreachable${typeof r.last_error === 'string' ? `: ${r.last_error}` : ''}` : 'reachable';
  const push = r.push === true ? ', push' : ', polling';
  return `${s(r.address)} (${state}, ${s(r.signatures)} signatures${push})`;
}

/** `2 live (ESTABLISHED 2, TIME_WAIT 3)`: the reference's count, and every state as `connections` lists them. */
function connectionsText(info: JsonObject): string {
  const states = isJsonObject(info.conn_states)
    ? Object.entries(info.conn_states).filter(([, n]) => typeof n === 'number' && n > 0)
    : [];
  return states.length === 0
    ? s(info.connections)
    : `${s(info.connections)} live (${states.map(([k, n]) => `${k} ${String(n)}`).join(', ')})`;
}

function infoText(info: JsonObject): string {
  const rows: [string, string][] = [
    ['address', s(info.address)],
    ['node id', s(info.node_id)],
    [
      'hostname',
      info.hostname === ''
        ? typeof info.hostname_error === 'string'
          ? `- (${info.hostname_error})`
          : '-'
        : s(info.hostname),
    ],
    ['public key', s(info.public_key)],
    ['owner', info.owner === '' ? '-' : s(info.owner)],
    ['encrypt', s(info.encrypt)],
    ['uptime', `${s(info.uptime_secs)}s`],
    ['peers', `${s(info.peers)} (${s(info.encrypted_peers)} encrypted, ${s(info.authenticated_peers)} authenticated)`],
    ['connections', connectionsText(info)],
    ['ports', s(info.ports)],
    [
      'traffic',
      `sent ${bytes(info.bytes_sent)} in ${s(info.pkts_sent)} packets, received ${bytes(info.bytes_recv)} in ${s(info.pkts_recv)} packets`,
    ],
  ];
  if (isJsonObject(info.registry)) rows.push(['registry', registryText(info.registry)]);
  if (isJsonObject(info.nat))
    rows.push([
      'nat',
      `${s(info.nat.type)} (mapping ${s(info.nat.mapping)}, filtering ${s(info.nat.filtering)}, seen as ${s(info.nat.public_endpoint) || '-'})`,
    ]);
  return rows.map(([k, v]) => `${k.padEnd(12)}${v}`).join('\n');
}

export const info: CommandSpec = {
  name: 'info',
  args: [],
  description: "Shows the daemon's address, identity, uptime, peers, connections and traffic counters.",
  returns: "the daemon's info object",
  flags: {},
  async run(ctx, args, usage) {
    maxPositionals(args, 0, usage);
    const data = await fetchInfo(ctx);
    return { data, text: infoText(data) };
  },
};

export const peers: CommandSpec = {
  name: 'peers',
  args: ['[--search <text>]'],
  description:
    'Lists tunnel peers with their hostnames; --search keeps those whose node id, hostname or endpoint contains the text (any case).',
  returns: '{peers: [{authenticated, encrypted, endpoint, hostname?, node_id, relay}] or null, total}',
  flags: { search: 'string' },
  async run(ctx, args, usage) {
    maxPositionals(args, 0, usage);
    const search = stringFlag(args, 'search')?.toLowerCase();
    const all = await named(ctx, list(await fetchInfo(ctx), 'peer_list'));
    const found =
      search === undefined
        ? all
        : all.filter((p) =>
            `${s(p.node_id)} ${typeof p.hostname === 'string' ? p.hostname : ''} ${s(p.endpoint)}`
              .toLowerCase()
              .includes(search),
          );
    const text =
      found.length === 0
        ? 'no peers'
        : formatTable(
            ['NODE ID', 'HOSTNAME', 'ENDPOINT', 'PATH', 'ENCRYPTED', 'AUTHENTICATED'],
            found.map((p) => [
              s(p.node_id),
              s(p.hostname),
              s(p.endpoint),
              p.relay === true ? 'relay' : 'direct',
              p.encrypted === true ? 'yes' : 'no',
              p.authenticated === true ? 'yes' : 'no',
            ]),
          );
    return { data: { peers: found.length === 0 ? null : found, total: found.length }, text };
  },
};

export const connections: CommandSpec = {
  name: 'connections',
  args: [],
  description: 'Lists stream connections with their state, traffic and transport counters.',
  returns: '{connections: [...], total}',
  flags: {},
  async run(ctx, args, usage) {
    maxPositionals(args, 0, usage);
    const conns = list(await fetchInfo(ctx), 'conn_list');
    const text =
      conns.length === 0
        ? 'no connections'
        : formatTable(
            ['ID', 'LOCAL', 'REMOTE', 'STATE', 'SENT', 'RECV', 'SRTT', 'RETX'],
            conns.map((c) => [
              s(c.id),
              s(c.local_port),
              `${s(c.remote_addr)}:${s(c.remote_port)}`,
              s(c.state),
              bytes(c.bytes_sent),
              bytes(c.bytes_recv),
              typeof c.srtt_ms === 'number' ? `${c.srtt_ms.toFixed(1)}ms` : s(c.srtt_ms),
              s(c.retransmits),
            ]),
          );
    return { data: { connections: conns, total: conns.length }, text };
  },
};

export const disconnect: CommandSpec = {
  name: 'disconnect',
  args: ['<conn_id>'],
  description:
    'Closes one connection by the id "pilotctl connections" shows; an id the daemon does not have is the error not_found.',
  returns: '{conn_id}',
  flags: {},
  async run(ctx, args, usage) {
    maxPositionals(args, 1, usage);
    const connId = parseConnId(positional(args, 0, 'conn_id', usage));
    await withDriver(ctx, async (d) => {
      // The daemon (like the reference's) answers CloseOK for any id, known or not: ask first.
      const info = toJson(await d.info());
      const known = isJsonObject(info) ? list(info, 'conn_list').some((c) => c.id === connId) : false;
      if (!known)
        throw new PilotError(
          'not_found',
          `no connection ${connId}`,
          'connection ids are listed by "pilotctl connections"',
        );
      await d.disconnect(connId);
    });
    return { data: { conn_id: connId }, text: `connection ${connId} closed` };
  },
};

/** The reference's `broadcast` always fails: kept for its scripts, left out of help and context. */
export const broadcast: CommandSpec = {
  name: 'broadcast',
  args: ['<network_id>', '<message>'],
  description: 'Not available: broadcast needs custom networks, which neither pilot-ts nor the reference supports yet.',
  returns: 'always the error "unavailable"',
  flags: {},
  hidden: true,
  async run() {
    throw new PilotError(
      'unavailable',
      'broadcast is not available: it needs custom networks, which are not supported yet',
      'send a datagram to each node with: pilotctl sendto <target> <port> --data <text>',
    );
  },
};
