import { spawn } from 'node:child_process';
import { DEFAULT_BEACON } from '../../config/home.js';
import { SERVER_NODE_FLAGS } from '../../config/node-flags.js';
import { ensureDir } from '../../crypto/atomic-file.js';
import { HomeLock } from '../../daemon/home-lock.js';
import { PilotError } from '../../errors.js';
import { isJsonObject, type JsonObject, type JsonValue } from '../../protocol/json.js';
import {
  boolFlag,
  invalid,
  maxPositionals,
  stringFlag,
  validateHostPort,
  validateHostname,
  validateWebhookUrl,
  type ParsedArgs,
} from '../args.js';
import type { CommandSpec } from '../command.js';
import { beaconFor, registryTls, resolveSettings, updateConfig, type Settings } from '../config-file.js';
import { socketState, type CliContext } from '../context.js';
import { toJson } from '../output.js';
import { registryText } from './admin.js';
import {
  exitWatch,
  isAlive,
  readPid,
  removePid,
  spawnDetached,
  tcpAnswers,
  terminate,
  waitUntil,
  writePid,
} from '../process.js';

const START_TIMEOUT_MS = 15_000;
const RENDEZVOUS_TIMEOUT_MS = 10_000;
const STOP_GRACE_MS = 10_000;
const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'silent'];

/** The daemon's Info reply when it answers on `socket`, else undefined. */
async function probeInfo(ctx: CliContext, socket: string): Promise<JsonObject | undefined> {
  try {
    const driver = await ctx.connectDriver(socket);
    try {
      const info = toJson(await driver.info());
      return isJsonObject(info) ? info : undefined;
    } finally {
      await driver.close().catch(() => undefined);
    }
  } catch {
    return undefined;
  }
}

const configText = (config: JsonObject, key: string): string | undefined => {
  const v = config[key];
  return typeof v === 'string' && v !== '' ? v : undefined;
};

/** `public` from the flag, else config.json (true, "true" or "1"). */
function publicSetting(args: ParsedArgs, config: JsonObject): boolean {
  if (args.flags.has('public')) return boolFlag(args, 'public');
  const v = config.public;
  return v === true || v === 'true' || v === '1';
}

function identityPath(ctx: CliContext, args: ParsedArgs, settings: Settings): string {
  return stringFlag(args, 'identity') ?? configText(settings.config, 'identity') ?? ctx.paths.identity;
}

function daemonFlags(ctx: CliContext, args: ParsedArgs, settings: Settings): string[] {
  const listen = stringFlag(args, 'listen') ?? configText(settings.config, 'listen') ?? ':0';
  validateHostPort(listen, 'listen', { allowEmptyHost: true });
  const out = [
    '-registry',
    settings.registry,
    '-beacon',
    settings.beacon,
    '-listen',
    listen,
    '-socket',
    settings.socket,
  ];
  const tls = registryTls(settings, boolFlag(args, 'registry-tls'));
  if (tls !== undefined) out.push('-registry-tls', '-registry-fingerprint', tls.fingerprint);
  out.push('-identity', identityPath(ctx, args, settings));
  if (settings.hostname !== undefined) out.push('-hostname', validateHostname(settings.hostname));
  if (settings.webhook !== undefined) out.push('-webhook', validateWebhookUrl(settings.webhook));
  if (publicSetting(args, settings.config)) out.push('-public');
  if (boolFlag(args, 'no-encrypt')) out.push('-encrypt=false');
  const owner = stringFlag(args, 'owner');
  if (owner !== undefined) out.push('-owner', owner);
  const level = stringFlag(args, 'log-level');
  if (level !== undefined) {
    if (!LOG_LEVELS.includes(level))
      throw invalid(`invalid --log-level ${JSON.stringify(level)}`, `one of: ${LOG_LEVELS.join(', ')}`);
    out.push('-log-level', level);
  }
  for (const name of ['no-echo', 'no-dataexchange', 'no-eventstream', 'no-tasksubmit']) {
    if (boolFlag(args, name)) out.push(`-${name}`);
  }
  return out;
}

const isLoopback = (hostPort: string): boolean => /^(127\.\d+\.\d+\.\d+|localhost|\[::1\]):\d+$/.test(hostPort);

/**
 * With a registry on this machine (the default 127.0.0.1:9000) and nothing listening there, starts
 * a local rendezvous (registry + beacon) so one command gives a working network; daemons of other
 * homes then join it.
 */
async function ensureLocalRendezvous(ctx: CliContext, settings: Settings): Promise<number | undefined> {
  const { registry, beacon } = settings;
  if (!isLoopback(registry) || (await tcpAnswers(registry))) return undefined;
  const { paths } = ctx;
  const args = [
    '-registry-addr',
    registry,
    '-beacon-addr',
    isLoopback(beacon) ? beacon : (beaconFor(registry) ?? DEFAULT_BEACON),
    '-store',
    paths.registryStore,
  ];
  // It keeps its certificate next to its store, so the fingerprint configured for it stays valid.
  if (settings.registryFingerprint !== undefined) args.push('-tls');
  const child = spawnDetached(ctx, ctx.scripts.rendezvous, args, paths.rendezvousLogFile);
  if (child.pid === undefined)
    throw new PilotError('internal', 'could not start the local rendezvous', `see the log: ${paths.rendezvousLogFile}`);
  await writePid(paths.rendezvousPidFile, child.pid);
  await waitUntil('the local rendezvous', async () => ((await tcpAnswers(registry)) ? true : undefined), {
    timeoutMs: RENDEZVOUS_TIMEOUT_MS,
    child: exitWatch(child),
    logFile: paths.rendezvousLogFile,
  });
  return child.pid;
}

async function refuseIfRunning(ctx: CliContext, socket: string, identity: string): Promise<void> {
  const pid = await readPid(ctx.paths.pidFile);
  if (pid !== undefined && isAlive(pid)) {
    throw new PilotError(
      'already_exists',
      `daemon is already running (pid ${pid})`,
      'stop it with: pilotctl daemon stop',
    );
  }
  if (pid !== undefined) await removePid(ctx.paths.pidFile);
  if ((await probeInfo(ctx, socket)) !== undefined) {
    throw new PilotError(
      'already_exists',
      `a daemon is already answering on ${socket}`,
      'use another socket with --socket or PILOT_SOCKET',
    );
  }
  const holder = await HomeLock.liveHolder(identity);
  if (holder !== undefined) {
    throw new PilotError(
      'already_exists',
      `the identity ${identity} is in use by a running pilot node (process ${holder})`,
      'stop that daemon or embedded node first, or give this daemon another home (PILOT_HOME or --identity)',
    );
  }
}

/** Runs the daemon attached to this terminal and returns its exit code. */
async function runForeground(ctx: CliContext, flags: string[]): Promise<number> {
  // Its own process group: Ctrl-C reaches it once, passed on from here, not also from the terminal
  // (a second SIGINT during its shutdown would kill it before it removes its socket).
  const child = spawn(ctx.node.execPath, [...ctx.node.execArgv, ...SERVER_NODE_FLAGS, ctx.scripts.daemon, ...flags], {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: ctx.env,
    detached: true,
  });
  const forward = (signal: NodeJS.Signals): void => {
    child.kill(signal);
  };
  const onInterrupt = (): void => forward('SIGINT');
  ctx.interrupt.addEventListener('abort', onInterrupt, { once: true });
  process.on('SIGTERM', forward).on('SIGHUP', forward);
  try {
    if (child.pid !== undefined) await writePid(ctx.paths.pidFile, child.pid);
    return await new Promise<number>((resolve, reject) => {
      child.once('error', (err) => reject(new PilotError('internal', `cannot run the daemon: ${err.message}`)));
      child.once('exit', (code, signal) => resolve(code ?? (signal === 'SIGINT' || signal === 'SIGTERM' ? 0 : 1)));
    });
  } finally {
    ctx.interrupt.removeEventListener('abort', onInterrupt);
    process.off('SIGTERM', forward).off('SIGHUP', forward);
    if (child.pid !== undefined) await removePid(ctx.paths.pidFile, child.pid);
  }
}

export const daemonStart: CommandSpec = {
  name: 'daemon start',
  args: [
    '[--registry <host:port>]',
    '[--registry-tls]',
    '[--registry-fingerprint <hex>]',
    '[--beacon <host:port>]',
    '[--listen <addr>]',
    '[--socket <path>]',
    '[--identity <file>]',
    '[--hostname <name>]',
    '[--public]',
    '[--webhook <url>]',
    '[--no-encrypt]',
    '[--owner <text>]',
    '[--log-level <level>]',
    '[--no-echo]',
    '[--no-dataexchange]',
    '[--no-eventstream]',
    '[--no-tasksubmit]',
    '[--foreground]',
  ],
  description:
    'Starts the daemon in the background (log in pilot.log, pid in pilot.pid) and waits up to 15s until it answers. Without --beacon the beacon is the registry\'s host and next port (127.0.0.1:9001 for the default registry 127.0.0.1:9000). With a registry on this machine and nothing listening there, a local rendezvous (registry + beacon) is started first. The network flags given (registry, beacon, registry-fingerprint, socket, hostname, webhook, public, listen, identity) are remembered in config.json, so a plain "pilotctl daemon start" rejoins the same network. --foreground keeps it attached. A registry fingerprint (flag, config registry_fingerprint or PILOT_REGISTRY_FINGERPRINT) makes the daemon use TLS to the registry, pinned to that certificate.',
  returns:
    '{address, beacon, hostname, log_file, node_id, pid, registry, remembered, socket} (remembered: the config.json keys this start stored)',
  flags: {
    registry: 'string',
    'registry-tls': 'bool',
    'registry-fingerprint': 'string',
    beacon: 'string',
    listen: 'string',
    socket: 'string',
    identity: 'string',
    hostname: 'string',
    public: 'bool',
    webhook: 'string',
    'no-encrypt': 'bool',
    owner: 'string',
    'log-level': 'string',
    'no-echo': 'bool',
    'no-dataexchange': 'bool',
    'no-eventstream': 'bool',
    'no-tasksubmit': 'bool',
    foreground: 'bool',
  },
  // Ctrl-C with --foreground stops the daemon; wait for it as "daemon stop" would.
  interruptible: true,
  interruptGraceMs: STOP_GRACE_MS + 2000,
  async run(ctx, args, usage) {
    maxPositionals(args, 0, usage);
    const registry = stringFlag(args, 'registry');
    const beacon = stringFlag(args, 'beacon');
    const settings = await resolveSettings(ctx, {
      registry: registry === undefined ? undefined : validateHostPort(registry, 'registry'),
      registryFingerprint: stringFlag(args, 'registry-fingerprint'),
      beacon: beacon === undefined ? undefined : validateHostPort(beacon, 'beacon'),
      socket: stringFlag(args, 'socket'),
      hostname: stringFlag(args, 'hostname'),
      webhook: stringFlag(args, 'webhook'),
    });
    if (registry !== undefined && beacon === undefined && beaconFor(settings.registry) === undefined) {
      throw invalid(`no beacon port follows registry port ${settings.registry}`, 'give --beacon <host:port>');
    }
    const flags = daemonFlags(ctx, args, settings);
    await ensureDir(ctx.paths.home, 0o700);
    await refuseIfRunning(ctx, settings.socket, identityPath(ctx, args, settings));
    const remembered = await rememberFlags(ctx, args, settings);
    const rendezvousPid = await ensureLocalRendezvous(ctx, settings);
    const notes = [
      ...(rendezvousPid !== undefined
        ? [`started local rendezvous (pid ${rendezvousPid}): registry ${settings.registry}, beacon ${settings.beacon}`]
        : []),
      ...(settings.beaconSource === 'derived'
        ? [`beacon ${settings.beacon} (registry port + 1; give --beacon to choose another)`]
        : []),
      ...(remembered.length > 0
        ? [`remembered in ${ctx.paths.config}: ${remembered.join(', ')} (a plain "pilotctl daemon start" reuses them)`]
        : []),
    ];
    if (boolFlag(args, 'foreground')) {
      for (const note of notes) ctx.out.info(note);
      const code = await runForeground(ctx, flags);
      return { data: { exit_code: code }, silent: true, exitCode: code === 0 ? 0 : 1 };
    }
    const child = spawnDetached(ctx, ctx.scripts.daemon, flags, ctx.paths.logFile);
    if (child.pid === undefined)
      throw new PilotError('internal', 'could not start the daemon', `see the log: ${ctx.paths.logFile}`);
    const pid = child.pid;
    await writePid(ctx.paths.pidFile, pid);
    const info = await waitUntil('the daemon', () => probeInfo(ctx, settings.socket), {
      timeoutMs: START_TIMEOUT_MS,
      child: exitWatch(child),
      logFile: ctx.paths.logFile,
      signal: ctx.interrupt,
    });
    const hostnameError = typeof info.hostname_error === 'string' ? info.hostname_error : undefined;
    const data = {
      address: info.address ?? null,
      beacon: settings.beacon,
      hostname: info.hostname ?? '',
      ...(hostnameError !== undefined ? { hostname_error: hostnameError } : {}),
      log_file: ctx.paths.logFile,
      node_id: info.node_id ?? null,
      pid,
      registry: settings.registry,
      remembered,
      socket: settings.socket,
    };
    const lines = [
      ...notes,
      `daemon running (pid ${pid})`,
      `  address   ${String(data.address)}`,
      `  node id   ${String(data.node_id)}`,
      ...(data.hostname !== '' ? [`  hostname  ${String(data.hostname)}`] : []),
      ...(hostnameError !== undefined
        ? [`  hostname  none — ${hostnameError}`, '  (choose another: pilotctl set-hostname <name>)']
        : []),
      `  registry  ${settings.registry}`,
      `  beacon    ${settings.beacon}`,
      `  socket    ${settings.socket}`,
      `  log       ${ctx.paths.logFile}`,
    ];
    return { data, text: lines.join('\n') };
  },
};

/**
 * Stores the network flags of this start in config.json (as `init` does), so that a restart
 * without flags joins the same registry and beacon with the same name. A beacon derived from a
 * --registry flag is stored with it, replacing one configured for another registry.
 */
async function rememberFlags(ctx: CliContext, args: ParsedArgs, settings: Settings): Promise<string[]> {
  const changes: [string, JsonValue][] = [];
  const text = (flag: string, key: string, value: string | undefined = stringFlag(args, flag)): void => {
    if (value !== undefined) changes.push([key, value]);
  };
  text('registry', 'registry', args.flags.has('registry') ? settings.registry : undefined);
  text(
    'beacon',
    'beacon',
    args.flags.has('beacon') || (args.flags.has('registry') && settings.beaconSource === 'derived')
      ? settings.beacon
      : undefined,
  );
  text('registry-fingerprint', 'registry_fingerprint');
  text('socket', 'socket');
  text('hostname', 'hostname');
  text('webhook', 'webhook');
  text('listen', 'listen');
  text('identity', 'identity');
  if (args.flags.has('public')) changes.push(['public', boolFlag(args, 'public')]);
  if (changes.length === 0) return [];
  const before = settings.config;
  const changed = changes.filter(([key, value]) => before[key] !== value);
  if (changed.length > 0) {
    await updateConfig(ctx.paths.config, (cfg) => {
      for (const [key, value] of changed) cfg[key] = value;
    });
  }
  return changes.map(([key]) => key);
}

async function stopByPidFile(pidFile: string): Promise<JsonObject | undefined> {
  const pid = await readPid(pidFile);
  if (pid === undefined) return undefined;
  if (!isAlive(pid)) {
    await removePid(pidFile);
    return undefined;
  }
  const { forced } = await terminate(pid, STOP_GRACE_MS);
  await removePid(pidFile, pid);
  return forced ? { forced: true, pid } : { pid };
}

const stoppedText = (what: string, r: JsonObject): string =>
  `${what} stopped (pid ${String(r.pid)}${r.forced === true ? ', killed' : ''})`;

export const daemonStop: CommandSpec = {
  name: 'daemon stop',
  args: ['[--all]'],
  description:
    'Stops the daemon started by "daemon start": SIGTERM, then SIGKILL after 10s. --all also stops the local rendezvous that "daemon start" may have started.',
  returns: '{pid} or {forced: true, pid}; with --all also {rendezvous: {pid}}',
  flags: { all: 'bool' },
  async run(ctx, args, usage) {
    maxPositionals(args, 0, usage);
    const all = boolFlag(args, 'all');
    const daemon = await stopByPidFile(ctx.paths.pidFile);
    const rendezvous = all ? await stopByPidFile(ctx.paths.rendezvousPidFile) : undefined;
    if (daemon === undefined && rendezvous === undefined) {
      throw new PilotError('not_running', 'daemon is not running', `no live process in ${ctx.paths.pidFile}`);
    }
    const data: JsonObject = { ...(daemon ?? {}) };
    if (rendezvous !== undefined) data.rendezvous = rendezvous;
    const lines = [daemon !== undefined ? stoppedText('daemon', daemon) : 'daemon was not running'];
    if (rendezvous !== undefined) lines.push(stoppedText('local rendezvous', rendezvous));
    return { data, text: lines.join('\n') };
  },
};

export const rendezvousStop: CommandSpec = {
  name: 'rendezvous stop',
  args: [],
  description: 'Stops the local rendezvous (registry + beacon) that "daemon start" started for the default registry.',
  returns: '{pid} or {forced: true, pid}',
  flags: {},
  async run(ctx, args, usage) {
    maxPositionals(args, 0, usage);
    const stopped = await stopByPidFile(ctx.paths.rendezvousPidFile);
    if (stopped === undefined)
      throw new PilotError(
        'not_running',
        'no local rendezvous is running',
        `no live process in ${ctx.paths.rendezvousPidFile}`,
      );
    return { data: stopped, text: stoppedText('local rendezvous', stopped) };
  },
};

export const daemonStatus: CommandSpec = {
  name: 'daemon status',
  args: ['[--check]'],
  description:
    'Reports whether the daemon process is alive and answers on its socket. --check prints nothing and exits 0 when it answers, 1 otherwise.',
  returns:
    '{local_rendezvous (pid or 0), pid, pid_file, responsive, running, socket} plus {address, connections, hostname, node_id, peers, registry, uptime_secs} when responsive, stale_socket: true when the socket file exists but nothing listens on it',
  flags: { check: 'bool' },
  async run(ctx, args, usage) {
    maxPositionals(args, 0, usage);
    const { socket } = await resolveSettings(ctx);
    const pid = await readPid(ctx.paths.pidFile);
    const running = pid !== undefined && isAlive(pid);
    const info = await probeInfo(ctx, socket);
    if (boolFlag(args, 'check')) return { data: null, silent: true, exitCode: info !== undefined ? 0 : 1 };
    const data: JsonObject = {
      pid: running ? pid : 0,
      pid_file: ctx.paths.pidFile,
      responsive: info !== undefined,
      running,
      socket,
    };
    if (info !== undefined) {
      data.address = info.address ?? null;
      data.hostname = info.hostname ?? '';
      data.node_id = info.node_id ?? null;
      data.connections = info.connections ?? 0;
      data.peers = info.peers ?? 0;
      data.uptime_secs = info.uptime_secs ?? 0;
      if (isJsonObject(info.registry)) data.registry = info.registry;
    }
    const rendezvousPid = await readPid(ctx.paths.rendezvousPidFile);
    data.local_rendezvous = rendezvousPid !== undefined && isAlive(rendezvousPid) ? rendezvousPid : 0;
    // A socket file nobody listens on: the daemon was killed (kill -9) or crashed.
    const stale = info === undefined && (await socketState(socket)) === 'stale';
    if (stale) data.stale_socket = true;
    const head = running
      ? `daemon running (pid ${pid})`
      : info !== undefined
        ? 'daemon answering (not started by pilotctl)'
        : 'daemon not running';
    const socketNote =
      info !== undefined
        ? ' (responsive)'
        : stale
          ? ' (stale: the file exists but nothing listens on it)'
          : running
            ? ' (not responding)'
            : ' (no socket)';
    const lines = [head, `  socket    ${socket}${socketNote}`];
    if (info !== undefined) {
      lines.push(`  address   ${String(data.address)}`, `  node id   ${String(data.node_id)}`);
      if (data.hostname !== '') lines.push(`  hostname  ${String(data.hostname)}`);
      lines.push(
        `  peers     ${String(data.peers)}`,
        `  conns     ${String(data.connections)}`,
        `  uptime    ${String(data.uptime_secs)}s`,
      );
      if (isJsonObject(data.registry)) lines.push(`  registry  ${registryText(data.registry)}`);
    }
    if (data.local_rendezvous !== 0)
      lines.push(`  local rendezvous running (pid ${String(data.local_rendezvous)}), started by "daemon start"`);
    return { data, text: lines.join('\n') };
  },
};
