import { DEFAULT_BEACON, DEFAULT_REGISTRY, DEFAULT_SOCKET } from '../../config/home.js';
import type { JsonObject } from '../../protocol/json.js';
import { invalid, maxPositionals, stringFlag, validateHostPort, validateHostname, validateWebhookUrl } from '../args.js';
import type { CommandSpec } from '../command.js';
import { readConfig, resolveSettings, updateConfig } from '../config-file.js';
import { normalizeFingerprint } from '../../registry/tls-pin.js';

function validateSocket(path: string): string {
  if (path === '' || path === 'true' || path.includes('\0')) throw invalid(`invalid socket path ${JSON.stringify(path)}`);
  return path;
}

/** Known keys are checked like the flags that set them; other keys are stored as given. */
function validateConfigValue(key: string, value: string): string {
  switch (key) {
    case 'registry':
      return validateHostPort(value, 'registry');
    case 'beacon':
      return validateHostPort(value, 'beacon');
    case 'hostname':
      return value === '' ? value : validateHostname(value);
    case 'webhook':
      return value === '' ? value : validateWebhookUrl(value);
    case 'socket':
      return validateSocket(value);
    case 'registry_fingerprint':
      return value === '' ? value : normalizeFingerprint(value, 'registry_fingerprint');
    default:
      return value;
  }
}

export const init: CommandSpec = {
  name: 'init',
  args: ['[--registry <host:port>]', '[--beacon <host:port>]', '[--hostname <name>]', '[--socket <path>]'],
  description: `Writes ~/.pilot/config.json (or $PILOT_HOME/config.json) with the registry, beacon, socket and optional hostname. Registry defaults to ${DEFAULT_REGISTRY}, beacon to ${DEFAULT_BEACON}.`,
  returns: '{beacon, config_path, hostname, registry, socket}',
  flags: { registry: 'string', beacon: 'string', hostname: 'string', socket: 'string' },
  async run(ctx, args) {
    maxPositionals(args, 0, 'pilotctl init [--registry host:port] [--beacon host:port] [--hostname name] [--socket path]');
    const registry = validateHostPort(stringFlag(args, 'registry') ?? DEFAULT_REGISTRY, 'registry');
    const beacon = validateHostPort(stringFlag(args, 'beacon') ?? DEFAULT_BEACON, 'beacon');
    const socket = validateSocket(stringFlag(args, 'socket') ?? DEFAULT_SOCKET);
    const hostnameFlag = stringFlag(args, 'hostname');
    const hostname = hostnameFlag === undefined ? '' : validateHostname(hostnameFlag);
    await updateConfig(ctx.paths.config, (cfg) => {
      cfg.registry = registry;
      cfg.beacon = beacon;
      cfg.socket = socket;
      if (hostname !== '') cfg.hostname = hostname;
    });
    const data = { beacon, config_path: ctx.paths.config, hostname, registry, socket };
    const text = [
      `wrote ${ctx.paths.config}`,
      `  registry  ${registry}`,
      `  beacon    ${beacon}`,
      `  socket    ${socket}`,
      ...(hostname !== '' ? [`  hostname  ${hostname}`] : []),
      'start the daemon with: pilotctl daemon start',
    ].join('\n');
    return { data, text };
  },
};

export const config: CommandSpec = {
  name: 'config',
  args: ['[--set <key>=<value>]'],
  description: 'Shows the configuration file with the paths and defaults in effect, or stores one string value with --set key=value.',
  returns: 'the config object plus config_path, pid_file, log_file (and registry/socket defaults); with --set: {key, value}',
  flags: { set: 'string' },
  async run(ctx, args) {
    maxPositionals(args, 0, 'pilotctl config [--set key=value]');
    const set = stringFlag(args, 'set');
    if (set !== undefined) {
      const eq = set.indexOf('=');
      const key = eq > 0 ? set.slice(0, eq) : '';
      if (key === '' || !/^[A-Za-z0-9_.-]+$/.test(key)) {
        throw invalid(`invalid --set ${JSON.stringify(set)}: expected key=value`, 'for example: pilotctl config --set registry=127.0.0.1:9000');
      }
      const value = validateConfigValue(key, set.slice(eq + 1));
      await updateConfig(ctx.paths.config, (cfg) => {
        cfg[key] = value;
      });
      return { data: { key, value }, text: `${key} = ${value}` };
    }
    const file = await readConfig(ctx.paths.config);
    const settings = await resolveSettings(ctx);
    const data: JsonObject = { ...file, config_path: ctx.paths.config, pid_file: ctx.paths.pidFile, log_file: ctx.paths.logFile };
    data.registry ??= settings.registry;
    data.socket ??= settings.socket;
    return { data };
  },
};
