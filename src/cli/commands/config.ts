import { DEFAULT_BEACON, DEFAULT_REGISTRY, DEFAULT_SOCKET } from '../../config/home.js';
import { PilotError } from '../../errors.js';
import type { JsonObject } from '../../protocol/json.js';
import {
  invalid,
  maxPositionals,
  stringFlag,
  validateHostPort,
  validateHostname,
  validateWebhookUrl,
} from '../args.js';
import type { CommandSpec } from '../command.js';
import { beaconFor, readConfig, resolveSettings, updateConfig, type SettingSource } from '../config-file.js';
import { normalizeFingerprint } from '../../registry/tls-pin.js';

function validateSocket(path: string): string {
  if (path === '' || path === 'true' || path.includes('\0'))
    throw invalid(`invalid socket path ${JSON.stringify(path)}`);
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
      if (value === '') return value;
      try {
        return normalizeFingerprint(value, 'registry_fingerprint');
      } catch (err) {
        throw err instanceof PilotError ? invalid(err.message, err.hint) : err;
      }
    default:
      return value;
  }
}

const envValue = (env: NodeJS.ProcessEnv, key: string): string | undefined =>
  env[key] !== undefined && env[key] !== '' ? env[key] : undefined;

const SOURCE_NOTE: Readonly<Record<SettingSource, string>> = {
  flag: '',
  config: ' (config.json)',
  env: '',
  default: ' (default)',
  derived: ' (registry port + 1)',
};

export const init: CommandSpec = {
  name: 'init',
  args: ['[--registry <host:port>]', '[--beacon <host:port>]', '[--hostname <name>]', '[--socket <path>]'],
  description: `Writes ~/.pilot/config.json (or $PILOT_HOME/config.json) with the registry, beacon, socket and optional hostname. Each is the flag, else PILOT_REGISTRY / PILOT_BEACON / PILOT_SOCKET, else the default (registry ${DEFAULT_REGISTRY}, socket ${DEFAULT_SOCKET}). The beacon defaults to the registry's host and next port (${DEFAULT_BEACON} for the default registry).`,
  returns: '{beacon, config_path, hostname, registry, socket}',
  flags: { registry: 'string', beacon: 'string', hostname: 'string', socket: 'string' },
  async run(ctx, args, usage) {
    maxPositionals(args, 0, usage);
    const registryFlag = stringFlag(args, 'registry');
    const registryEnv = envValue(ctx.env, 'PILOT_REGISTRY');
    const registry = validateHostPort(registryFlag ?? registryEnv ?? DEFAULT_REGISTRY, 'registry');
    const registryNote =
      registryFlag !== undefined ? '' : registryEnv !== undefined ? ' (from PILOT_REGISTRY)' : SOURCE_NOTE.default;
    const beaconFlag = stringFlag(args, 'beacon');
    const beaconEnv = registryFlag === undefined ? envValue(ctx.env, 'PILOT_BEACON') : undefined;
    const derived = registry === DEFAULT_REGISTRY && registryFlag === undefined ? DEFAULT_BEACON : beaconFor(registry);
    const beaconText = beaconFlag ?? beaconEnv ?? derived;
    if (beaconText === undefined)
      throw invalid(`no beacon port follows registry port ${registry}`, 'give --beacon <host:port>');
    const beacon = validateHostPort(beaconText, 'beacon');
    const beaconNote =
      beaconFlag !== undefined ? '' : beaconEnv !== undefined ? ' (from PILOT_BEACON)' : SOURCE_NOTE.derived;
    const socketFlag = stringFlag(args, 'socket');
    const socketEnv = envValue(ctx.env, 'PILOT_SOCKET');
    const socket = validateSocket(socketFlag ?? socketEnv ?? DEFAULT_SOCKET);
    const socketNote =
      socketFlag !== undefined ? '' : socketEnv !== undefined ? ' (from PILOT_SOCKET)' : SOURCE_NOTE.default;
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
      `  registry  ${registry}${registryNote}`,
      `  beacon    ${beacon}${beaconNote}`,
      `  socket    ${socket}${socketNote}`,
      ...(hostname !== '' ? [`  hostname  ${hostname}`] : []),
      'start the daemon with: pilotctl daemon start',
    ].join('\n');
    return { data, text };
  },
};

export const config: CommandSpec = {
  name: 'config',
  args: ['[--set <key>=<value>]'],
  description:
    'Shows config.json with the paths and the registry, beacon and socket in effect (a flag-less daemon start uses them; PILOT_SOCKET beats the file, "sources" says where each came from), or stores one string value with --set key=value.',
  returns:
    'the config object plus config_path, pid_file, log_file, the registry, beacon and socket in effect and their sources; with --set: {key, value}',
  flags: { set: 'string' },
  async run(ctx, args, usage) {
    maxPositionals(args, 0, usage);
    const set = stringFlag(args, 'set');
    if (set !== undefined) {
      const eq = set.indexOf('=');
      const key = eq > 0 ? set.slice(0, eq) : '';
      if (key === '' || !/^[A-Za-z0-9_.-]+$/.test(key)) {
        throw invalid(
          `invalid --set ${JSON.stringify(set)}: expected key=value`,
          'for example: pilotctl config --set registry=127.0.0.1:9000',
        );
      }
      const value = validateConfigValue(key, set.slice(eq + 1));
      await updateConfig(ctx.paths.config, (cfg) => {
        cfg[key] = value;
      });
      return { data: { key, value }, text: `${key} = ${value}` };
    }
    const file = await readConfig(ctx.paths.config);
    const settings = await resolveSettings(ctx);
    const data: JsonObject = {
      ...file,
      config_path: ctx.paths.config,
      pid_file: ctx.paths.pidFile,
      log_file: ctx.paths.logFile,
    };
    data.registry = settings.registry;
    data.beacon = settings.beacon;
    data.socket = settings.socket;
    const envName: Readonly<Record<string, string>> = {
      registry: 'PILOT_REGISTRY',
      beacon: 'PILOT_BEACON',
      socket: 'PILOT_SOCKET',
    };
    const sources: JsonObject = {};
    for (const [key, source] of [
      ['registry', settings.registrySource],
      ['beacon', settings.beaconSource],
      ['socket', settings.socketSource],
    ] as const) {
      sources[key] =
        source === 'env'
          ? (envName[key] ?? source)
          : source === 'derived'
            ? 'registry port + 1'
            : source === 'config'
              ? 'config.json'
              : source;
    }
    data.sources = sources;
    return { data };
  },
};
