import { fromBase64 } from '../../crypto/base64.js';
import type { Addr } from '../../protocol/address.js';
import type { JsonObject, JsonValue } from '../../protocol/json.js';
import { PilotError } from '../../errors.js';
import {
  sendFile as sdkSendFile,
  sendMessage as sdkSendMessage,
  type DataDialer,
  type MessageType,
  type SendResult,
} from '../../sdk/dataexchange.js';
import { Outbox, outboxRow } from '../../services/dataexchange/outbox.js';
import { clearDir, listInbox, listReceived } from '../../services/dataexchange/store.js';
import { ServiceState } from '../../services/dataexchange/state.js';
import { boolFlag, invalid, maxPositionals, parseDirectTarget, positional, requireFlag, stringFlag } from '../args.js';
import { withDriver, type CommandSpec } from '../command.js';
import type { CliContext } from '../context.js';
import { formatTable } from '../output.js';
import { resolveTarget } from '../target.js';
import { named } from '../names.js';

/** Data exchange (port 1001): send-message, send-file, inbox, received, outbox. */

const MESSAGE_TYPES: readonly MessageType[] = ['text', 'json', 'binary'];

/** Queued sends only write the local outbox; the daemon dials later. */
const NO_DIAL: DataDialer = { dial: () => Promise.reject(new PilotError('internal', 'a queued send does not dial')) };

/** A queued send needs no daemon unless the target is a hostname. */
async function queueTarget(ctx: CliContext, text: string): Promise<Addr> {
  return parseDirectTarget(text) ?? (await withDriver(ctx, async (d) => (await resolveTarget(d, text)).addr));
}

function messagePayload(data: string, type: MessageType): string | Uint8Array {
  if (type !== 'binary') return data;
  const bytes = fromBase64(data);
  if (bytes === undefined)
    throw invalid('--data is not valid base64', 'with --type binary, give the bytes base64-encoded');
  return bytes;
}

function resultData(r: SendResult, extra: JsonObject): JsonObject {
  const out: JsonObject = { bytes: r.bytes, ...extra };
  if (r.ack !== undefined) out.ack = r.ack;
  if (r.queued === true) {
    out.queued = true;
    out.id = r.id ?? '';
  }
  return out;
}

export const sendMessage: CommandSpec = {
  name: 'send-message',
  args: ['<node_id|address|hostname>', '--data <text>', '[--type text|json|binary]', '[--queue]'],
  description:
    "Sends a message to the node's inbox (port 1001) and prints its acknowledgement. JSON is validated first; binary data is given base64-encoded. With --queue it is stored in the local outbox and the daemon delivers it, retrying until acknowledged (24 h).",
  returns: '{ack, bytes, target, type} or, queued, {bytes, id, queued, target, type}',
  flags: { data: 'string', type: 'string', queue: 'bool' },
  async run(ctx, args, usage) {
    maxPositionals(args, 1, usage);
    const targetText = positional(args, 0, 'target', usage);
    const data = requireFlag(args, 'data', usage);
    const type = (stringFlag(args, 'type') ?? 'text') as MessageType;
    if (!MESSAGE_TYPES.includes(type))
      throw invalid(`invalid --type ${JSON.stringify(type)}`, 'use text, json or binary');
    const payload = messagePayload(data, type);
    const queue = boolFlag(args, 'queue');
    let result: SendResult;
    if (queue) {
      const addr = await queueTarget(ctx, targetText);
      result = await sdkSendMessage(NO_DIAL, addr, payload, { type, queue, home: ctx.paths.home });
    } else {
      result = await withDriver(ctx, async (d) =>
        sdkSendMessage(d, (await resolveTarget(d, targetText)).addr, payload, { type }),
      );
    }
    const out = resultData(result, { target: result.target, type });
    return {
      data: out,
      text: queue ? `queued ${result.bytes} bytes for ${result.target} (id ${result.id ?? ''})` : String(result.ack),
    };
  },
};

export const sendFile: CommandSpec = {
  name: 'send-file',
  args: ['<node_id|address|hostname>', '<path>', '[--queue]'],
  description:
    "Streams a file (up to 16 MiB less its name) to the node's received/ folder (port 1001) and prints its acknowledgement. With --queue it is stored in the local outbox and the daemon delivers it.",
  returns: '{ack, bytes, destination, filename} or, queued, {bytes, destination, filename, id, queued}',
  flags: { queue: 'bool' },
  async run(ctx, args, usage) {
    maxPositionals(args, 2, usage);
    const targetText = positional(args, 0, 'target', usage);
    const path = positional(args, 1, 'path', usage);
    const queue = boolFlag(args, 'queue');
    const filename = path.split(/[/\\]/).pop() ?? path;
    let result: SendResult;
    if (queue) {
      const addr = await queueTarget(ctx, targetText);
      result = await sdkSendFile(NO_DIAL, addr, path, { queue, home: ctx.paths.home });
    } else {
      result = await withDriver(ctx, async (d) => {
        const addr = (await resolveTarget(d, targetText)).addr;
        let bar: ReturnType<CliContext['out']['progress']> | undefined;
        try {
          return await sdkSendFile(d, addr, path, {
            onProgress: (sent, total) => {
              bar ??= ctx.out.progress(`sending ${filename}`, total);
              bar.update(sent);
            },
          });
        } finally {
          bar?.finish();
        }
      });
    }
    const out = resultData(result, { destination: targetText, filename });
    return {
      data: out,
      text: queue
        ? `queued ${filename} (${result.bytes} bytes) for ${result.target} (id ${result.id ?? ''})`
        : `${String(result.ack)} (${filename} to ${result.target})`,
    };
  },
};

function listing(name: 'inbox' | 'received'): CommandSpec {
  const isInbox = name === 'inbox';
  return {
    name,
    args: ['[--clear]'],
    description: isInbox
      ? 'Lists the messages other nodes sent to this one (inbox/); --clear deletes them.'
      : 'Lists the files other nodes sent to this one (received/); --clear deletes them.',
    returns: isInbox
      ? '{dir, messages: [{bytes, data, from, from_hostname?, received_at, type}], total} or {cleared}'
      : '{dir, files: [{bytes, from?, from_hostname?, modified, name, path}], total} or {cleared}',
    flags: { clear: 'bool' },
    async run(ctx, args, usage) {
      maxPositionals(args, 0, usage);
      if (boolFlag(args, 'clear')) {
        const cleared = await clearDir(isInbox ? ctx.paths.inbox : ctx.paths.received);
        return { data: { cleared }, text: `cleared ${cleared} ${isInbox ? 'messages' : 'files'}` };
      }
      const data = isInbox ? await listInbox(ctx.paths.home) : await listReceived(ctx.paths.home);
      if (isInbox && Array.isArray(data.messages))
        data.messages = await named(ctx, data.messages as JsonObject[], 'from');
      if (!isInbox && Array.isArray(data.files)) {
        const senders = await ServiceState.senders(ctx.paths.home);
        const withSenders = (data.files as JsonObject[]).map((f) => {
          const from = typeof f.name === 'string' ? senders.get(f.name) : undefined;
          return from === undefined ? f : { ...f, from };
        });
        data.files = await named(ctx, withSenders, 'from');
      }
      const rows = ((isInbox ? data.messages : data.files) ?? []) as JsonObject[];
      const cell = (v: JsonValue | undefined): string => (v === undefined || v === null ? '' : String(v));
      const text =
        rows.length === 0
          ? `no ${isInbox ? 'messages' : 'files'}`
          : isInbox
            ? formatTable(
                ['RECEIVED', 'FROM', 'TYPE', 'BYTES', 'DATA'],
                rows.map((m) => [
                  cell(m.received_at),
                  typeof m.from_hostname === 'string' ? `${cell(m.from)} (${m.from_hostname})` : cell(m.from),
                  cell(m.type),
                  cell(m.bytes),
                  cell(m.data).slice(0, 60),
                ]),
              )
            : formatTable(
                ['MODIFIED', 'FROM', 'BYTES', 'NAME'],
                rows.map((f) => [
                  cell(f.modified),
                  typeof f.from_hostname === 'string' ? `${cell(f.from)} (${f.from_hostname})` : cell(f.from ?? '-'),
                  cell(f.bytes),
                  cell(f.name),
                ]),
              );
      return { data, text };
    },
  };
}

export const inbox = listing('inbox');
export const received = listing('received');

export const outbox: CommandSpec = {
  name: 'outbox',
  args: [],
  description: 'Lists the messages and files queued with --queue that the daemon has not delivered yet.',
  returns:
    '{dir, items: [{attempts, bytes, created_at, expires_at, filename?, id, last_error?, next_attempt_at, target, type}], total}',
  flags: {},
  async run(ctx, args, usage) {
    maxPositionals(args, 0, usage);
    const box = new Outbox(ctx.paths.home);
    const items = (await box.list()).map(outboxRow);
    const text =
      items.length === 0
        ? 'outbox is empty'
        : formatTable(
            ['ID', 'TARGET', 'TYPE', 'BYTES', 'ATTEMPTS', 'LAST ERROR'],
            items.map((i) => [
              String(i.id),
              String(i.target),
              String(i.type),
              String(i.bytes),
              String(i.attempts),
              String(i.last_error ?? ''),
            ]),
          );
    return { data: { dir: box.dir, items, total: items.length }, text };
  },
};
