import { isJsonObject, type JsonObject, type JsonValue } from '../../protocol/json.js';
import { maxPositionals, parseNodeId, positional } from '../args.js';
import { withDriver, type CommandSpec } from '../command.js';
import { formatTable, toJson } from '../output.js';
import { named } from '../names.js';
import { resolveTarget } from '../target.js';

function objects(value: unknown, key: string): JsonObject[] {
  let json = toJson(value);
  // Accept both the bare list and the daemon's {"<key>": [...]} wrapper.
  if (isJsonObject(json)) json = json[key] ?? [];
  return Array.isArray(json) ? json.filter(isJsonObject) : [];
}

function statusReply(value: unknown, nodeId: number, status: string): JsonObject {
  const json = toJson(value);
  const reply = isJsonObject(json) ? json : {};
  return { node_id: reply.node_id ?? nodeId, status: reply.status ?? status };
}

const cell = (v: JsonValue | undefined): string =>
  v === undefined || v === null ? '' : typeof v === 'string' ? v : JSON.stringify(v);

function unixTime(v: JsonValue | undefined): string {
  return typeof v === 'number' && v > 0 ? new Date(v * 1000).toISOString().replace(/\.\d+Z$/, 'Z') : cell(v);
}

export const handshake: CommandSpec = {
  name: 'handshake',
  args: ['<node_id|address|hostname>', '[justification…]'],
  description: 'Asks a node to trust this one; the justification is shown to its operator.',
  returns: '{node_id, status: "sent"}',
  flags: {},
  async run(ctx, args, usage) {
    const targetText = positional(args, 0, 'target', usage);
    const justification = args.positionals.slice(1).join(' ');
    const data = await withDriver(ctx, async (d) => {
      const { addr } = await resolveTarget(d, targetText);
      return statusReply(await d.handshake(addr.node, justification), addr.node, 'sent');
    });
    return { data, text: `trust request sent to node ${String(data.node_id)}` };
  },
};

function decision(name: 'approve' | 'reject' | 'untrust', description: string, returns: string): CommandSpec {
  const extra = name === 'reject' ? ['[reason…]'] : [];
  return {
    name,
    args: ['<node_id>', ...extra],
    description,
    returns,
    flags: {},
    async run(ctx, args, usage) {
      if (name !== 'reject') maxPositionals(args, 1, usage);
      const nodeId = parseNodeId(positional(args, 0, 'node_id', usage));
      if (name === 'approve') {
        const data = await withDriver(ctx, async (d) => statusReply(await d.approve(nodeId), nodeId, 'approved'));
        return { data, text: `node ${nodeId} approved` };
      }
      if (name === 'reject') {
        const reason = args.positionals.slice(1).join(' ');
        const data = await withDriver(ctx, async (d) =>
          statusReply(await d.reject(nodeId, reason), nodeId, 'rejected'),
        );
        return { data, text: `node ${nodeId} rejected` };
      }
      await withDriver(ctx, (d) => d.untrust(nodeId));
      return { data: { node_id: nodeId }, text: `node ${nodeId} is no longer trusted` };
    },
  };
}

export const approve = decision('approve', 'Accepts a pending trust request.', '{node_id, status: "approved"}');
export const reject = decision('reject', 'Declines a pending trust request.', '{node_id, status: "rejected"}');
export const untrust = decision('untrust', 'Revokes trust in a node.', '{node_id}');

export const pending: CommandSpec = {
  name: 'pending',
  args: [],
  description: 'Lists trust requests waiting for approve or reject.',
  returns: '{pending: [{hostname?, justification, node_id, public_key, received_at}]}',
  flags: {},
  async run(ctx, args, usage) {
    maxPositionals(args, 0, usage);
    const list = await named(ctx, objects(await withDriver(ctx, (d) => d.pending()), 'pending'));
    const text =
      list.length === 0
        ? 'no pending trust requests'
        : formatTable(
            ['NODE ID', 'HOSTNAME', 'RECEIVED', 'JUSTIFICATION'],
            list.map((p) => [cell(p.node_id), cell(p.hostname ?? '-'), unixTime(p.received_at), cell(p.justification)]),
          );
    return { data: { pending: list }, text };
  },
};

export const handshakes: CommandSpec = {
  name: 'handshakes',
  args: [],
  description:
    "Lists the trust requests this node sent and what became of them: sent (no answer yet), accepted, or rejected (with the peer's reason when it gave one).",
  returns: '{outgoing: [{answered_at?, hostname?, node_id, reason?, sent_at, state}]}',
  flags: {},
  async run(ctx, args, usage) {
    maxPositionals(args, 0, usage);
    const list = await named(ctx, objects(await withDriver(ctx, (d) => d.outgoing()), 'outgoing'));
    const text =
      list.length === 0
        ? 'no trust requests sent'
        : formatTable(
            ['NODE ID', 'HOSTNAME', 'SENT', 'STATE', 'REASON'],
            list.map((o) => [
              cell(o.node_id),
              cell(o.hostname ?? '-'),
              unixTime(o.sent_at),
              cell(o.state),
              cell(o.reason ?? ''),
            ]),
          );
    return { data: { outgoing: list }, text };
  },
};

export const trust: CommandSpec = {
  name: 'trust',
  args: [],
  description: 'Lists the nodes this one trusts.',
  returns: '{trusted: [{approved_at, hostname?, mutual, network, node_id, public_key}]}',
  flags: {},
  async run(ctx, args, usage) {
    maxPositionals(args, 0, usage);
    const list = await named(ctx, objects(await withDriver(ctx, (d) => d.trusted()), 'trusted'));
    const text =
      list.length === 0
        ? 'no trusted nodes'
        : formatTable(
            ['NODE ID', 'HOSTNAME', 'MUTUAL', 'NETWORK', 'APPROVED', 'PUBLIC KEY'],
            list.map((t) => [
              cell(t.node_id),
              cell(t.hostname ?? '-'),
              t.mutual === true ? 'yes' : 'no',
              cell(t.network),
              unixTime(t.approved_at),
              cell(t.public_key),
            ]),
          );
    return { data: { trusted: list }, text };
  },
};
