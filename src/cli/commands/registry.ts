import { PilotError } from '../../errors.js';
import { isJsonObject, type JsonObject } from '../../protocol/json.js';
import {
  boolFlag,
  maxPositionals,
  parseNodeId,
  positional,
  stringFlag,
  validateHostPort,
  validateHostname,
  validateTags,
  validateWebhookUrl,
} from '../args.js';
import { withDriver, type CommandSpec } from '../command.js';
import { registryTls, resolveSettings, updateConfig } from '../config-file.js';
import type { DaemonClient } from '../context.js';
import { toJson } from '../output.js';
import { hostnameError } from '../target.js';

function asObject(value: unknown): JsonObject {
  const json = toJson(value);
  return isJsonObject(json) ? json : { value: json };
}

/** A command that sends one request through the daemon and prints the registry's reply as it is. */
function passThrough(
  name: string,
  description: string,
  returns: string,
  call: (d: DaemonClient) => Promise<unknown>,
  text: (r: JsonObject) => string,
): CommandSpec {
  return {
    name,
    args: [],
    description,
    returns,
    flags: {},
    async run(ctx, args, usage) {
      maxPositionals(args, 0, usage);
      const reply = asObject(await withDriver(ctx, call));
      return { data: reply, text: text(reply) };
    },
  };
}

export const lookup: CommandSpec = {
  name: 'lookup',
  args: ['<node_id>', '[--registry <host:port>]', '[--registry-tls]', '[--registry-fingerprint <hex>]'],
  description:
    'Asks the registry directly (no daemon needed) for what it knows about a node. With a registry fingerprint (flag, config registry_fingerprint or PILOT_REGISTRY_FINGERPRINT) it connects over TLS and checks the certificate.',
  returns: "the registry's lookup_ok reply",
  flags: { registry: 'string', 'registry-tls': 'bool', 'registry-fingerprint': 'string' },
  async run(ctx, args, usage) {
    maxPositionals(args, 1, usage);
    const nodeId = parseNodeId(positional(args, 0, 'node_id', usage));
    const flag = stringFlag(args, 'registry');
    const settings = await resolveSettings(ctx, {
      registry: flag === undefined ? undefined : validateHostPort(flag, 'registry'),
      registryFingerprint: stringFlag(args, 'registry-fingerprint'),
    });
    const { registry } = settings;
    const tls = registryTls(settings, boolFlag(args, 'registry-tls'));
    const client = ctx.connectRegistry(registry, tls);
    try {
      const reply = asObject(await client.lookup(nodeId));
      return { data: reply };
    } catch (err) {
      if (err instanceof PilotError) throw err;
      throw new PilotError(
        'connection_failed',
        `lookup ${nodeId}: registry ${registry}: ${(err as Error).message}`,
        'check the registry address with: pilotctl config',
      );
    } finally {
      client.close();
    }
  },
};

export const find: CommandSpec = {
  name: 'find',
  args: ['<hostname>'],
  description: 'Resolves a hostname to a node id and address through the daemon.',
  returns: '{address, hostname, node_id, public}',
  flags: {},
  async run(ctx, args, usage) {
    maxPositionals(args, 1, usage);
    const hostname = validateHostname(positional(args, 0, 'hostname', usage));
    const reply = await withDriver(ctx, async (d) => {
      try {
        return asObject(await d.resolveHostname(hostname));
      } catch (err) {
        throw hostnameError(hostname, err);
      }
    });
    const data = {
      address: reply.address ?? null,
      hostname: reply.hostname ?? hostname,
      node_id: reply.node_id ?? null,
      public: reply.public ?? false,
    };
    return {
      data,
      text: `${hostname}  ${String(data.address)}  (node ${String(data.node_id)}${data.public === true ? ', public' : ''})`,
    };
  },
};

export const setHostname: CommandSpec = {
  name: 'set-hostname',
  args: ['<hostname>'],
  description: 'Registers a hostname for this node and stores it in config.json for the next daemon start.',
  returns: '{hostname, node_id}',
  flags: {},
  async run(ctx, args, usage) {
    maxPositionals(args, 1, usage);
    const hostname = validateHostname(positional(args, 0, 'hostname', usage));
    const reply = asObject(await withDriver(ctx, (d) => d.setHostname(hostname)));
    await updateConfig(ctx.paths.config, (cfg) => {
      cfg.hostname = hostname;
    });
    const data = { hostname: reply.hostname ?? hostname, node_id: reply.node_id ?? null };
    return { data, text: `hostname set to ${hostname}` };
  },
};

export const clearHostname: CommandSpec = {
  name: 'clear-hostname',
  args: [],
  description: "Removes this node's hostname at the registry and from config.json.",
  returns: '{hostname: ""}',
  flags: {},
  async run(ctx, args, usage) {
    maxPositionals(args, 0, usage);
    await withDriver(ctx, (d) => d.setHostname(''));
    await updateConfig(ctx.paths.config, (cfg) => {
      delete cfg.hostname;
    });
    return { data: { hostname: '' }, text: 'hostname cleared' };
  },
};

export const setPublic = passThrough(
  'set-public',
  'Makes this node visible: anyone can look it up and resolve its hostname.',
  "the registry's set_visibility_ok reply",
  (d) => d.setVisibility(true),
  () => 'node is now public',
);

export const setPrivate = passThrough(
  'set-private',
  'Hides this node: only trusted peers can look it up or resolve its hostname.',
  "the registry's set_visibility_ok reply",
  (d) => d.setVisibility(false),
  () => 'node is now private',
);

export const enableTasks = passThrough(
  'enable-tasks',
  'Advertises that this node accepts tasks on port 1003.',
  "the registry's set_task_exec_ok reply",
  (d) => d.setTaskExec(true),
  () => 'task execution enabled',
);

export const disableTasks = passThrough(
  'disable-tasks',
  'Stops advertising task execution.',
  "the registry's set_task_exec_ok reply",
  (d) => d.setTaskExec(false),
  () => 'task execution disabled',
);

export const deregister = passThrough(
  'deregister',
  'Removes this node from the registry (it registers again when the daemon restarts).',
  "the registry's deregister_ok reply",
  (d) => d.deregister(),
  () => 'node deregistered',
);

export const setTags: CommandSpec = {
  name: 'set-tags',
  args: ['<tag>', '[tag]', '[tag]'],
  description: 'Replaces the tags of this node (at most 3; a leading # is dropped).',
  returns: '{node_id, tags}',
  flags: {},
  async run(ctx, args, usage) {
    const tags = validateTags(args.positionals, usage);
    const reply = asObject(await withDriver(ctx, (d) => d.setTags(tags)));
    const data = { node_id: reply.node_id ?? null, tags: reply.tags ?? tags };
    return { data, text: `tags set: ${tags.map((t) => `#${t}`).join(' ')}` };
  },
};

export const clearTags: CommandSpec = {
  name: 'clear-tags',
  args: [],
  description: 'Removes all tags of this node.',
  returns: '{tags: []}',
  flags: {},
  async run(ctx, args, usage) {
    maxPositionals(args, 0, usage);
    await withDriver(ctx, (d) => d.setTags([]));
    return { data: { tags: [] }, text: 'tags cleared' };
  },
};

/** Stores the webhook in config.json, then applies it to the daemon when one answers. */
async function applyWebhook(
  ctx: Parameters<CommandSpec['run']>[0],
  url: string,
): Promise<{ applied: boolean; webhook: string }> {
  await updateConfig(ctx.paths.config, (cfg) => {
    if (url === '') delete cfg.webhook;
    else cfg.webhook = url;
  });
  try {
    await withDriver(ctx, (d) => d.setWebhook(url));
    return { applied: true, webhook: url };
  } catch (err) {
    if (err instanceof PilotError && err.code === 'not_running') return { applied: false, webhook: url };
    throw err;
  }
}

const webhookText = (r: { applied: boolean }, what: string): string =>
  `${what}${r.applied ? '' : ' (daemon not running: takes effect at the next daemon start)'}`;

export const setWebhook: CommandSpec = {
  name: 'set-webhook',
  args: ['<url>'],
  description: 'Sets the URL the daemon POSTs its events to; stored in config.json and applied to a running daemon.',
  returns: '{applied, webhook}',
  flags: {},
  async run(ctx, args, usage) {
    maxPositionals(args, 1, usage);
    const url = validateWebhookUrl(positional(args, 0, 'url', usage));
    const r = await applyWebhook(ctx, url);
    return { data: r, text: webhookText(r, `webhook set to ${url}`) };
  },
};

export const clearWebhook: CommandSpec = {
  name: 'clear-webhook',
  args: [],
  description: 'Turns the webhook off, in config.json and on a running daemon.',
  returns: '{applied, webhook: ""}',
  flags: {},
  async run(ctx, args, usage) {
    maxPositionals(args, 0, usage);
    const r = await applyWebhook(ctx, '');
    return { data: r, text: webhookText(r, 'webhook cleared') };
  },
};
