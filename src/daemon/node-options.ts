import { pilotPaths } from '../config/home.js';
import { createLogger, type Logger } from '../log.js';
import { type NodeConfig, parseDaemonArgs } from './config.js';

/** How an application starts a node inside its own process (`createNode`). */
export interface NodeOptions {
  /**
   * Pilot home, the daemon's layout (default `$PILOT_HOME`, else ~/.pilot): identity.key,
   * trust.json, inbox/, received/, tasks/. A home whose identity a running daemon or another
   * node holds is refused.
   */
  home?: string;
  /** Registry `host:port` (default `$PILOT_REGISTRY`, else 127.0.0.1:9000). */
  registry?: string;
  /** SHA-256 (hex) of the registry's TLS certificate: connects over TLS, pinned to it. */
  registryFingerprint?: string;
  /** Beacon `host:port` (default `$PILOT_BEACON`, else 127.0.0.1:9001). */
  beacon?: string;
  hostname?: string;
  /** UDP listen address (default `:0`). */
  listen?: string;
  /** Public `host:port` to register instead of discovering it. */
  endpoint?: string;
  /** Identity file (default `<home>/identity.key`); `false` = a fresh identity for this run only. */
  identity?: string | false;
  /** Encrypted tunnels (default true). */
  encrypt?: boolean;
  public?: boolean;
  owner?: string;
  webhook?: string;
  /** Built-in services, each on by default: echo (7), data exchange (1001), event stream (1002), tasks (1003). */
  echo?: boolean;
  dataExchange?: boolean;
  eventStream?: boolean;
  taskSubmit?: boolean;
  /** Logger for the node's parts; default: warnings and errors to standard error. */
  log?: Logger;
}

/**
 * The node configuration for `options`, checked and completed by the daemon's own flag parser,
 * so an embedded node and a daemon started with the same settings are the same node.
 */
export function nodeConfig(options: NodeOptions, env: NodeJS.ProcessEnv = process.env): NodeConfig {
  const home = options.home ?? (env.PILOT_HOME || undefined);
  const flags: string[] = [];
  const set = (name: string, value: string | undefined): void => {
    if (value !== undefined && value !== '') flags.push(`-${name}=${value}`);
  };
  const on = (name: string, value: boolean | undefined): void => {
    if (value === true) flags.push(`-${name}`);
  };
  set('home', home);
  set('registry', options.registry ?? env.PILOT_REGISTRY);
  set('beacon', options.beacon ?? env.PILOT_BEACON);
  if (options.registryFingerprint !== undefined) {
    flags.push('-registry-tls');
    set('registry-fingerprint', options.registryFingerprint);
  }
  set('hostname', options.hostname);
  set('listen', options.listen);
  set('endpoint', options.endpoint);
  set('owner', options.owner);
  set('webhook', options.webhook);
  if (options.encrypt === false) flags.push('-encrypt=false');
  on('public', options.public);
  on('no-echo', options.echo === false);
  on('no-dataexchange', options.dataExchange === false);
  on('no-eventstream', options.eventStream === false);
  on('no-tasksubmit', options.taskSubmit === false);
  const parsed = parseDaemonArgs(flags, env);
  if (typeof parsed === 'string') throw new Error(`unexpected ${parsed} from the node options`);
  const { socket: _socket, logLevel: _level, logFormat: _format, ...config } = parsed;
  if (options.identity !== false) config.identity = options.identity ?? pilotPaths(config.home).identity;
  return config;
}

/** The logger of an embedded node: the application's, else warnings and errors to standard error. */
export function nodeLogger(options: NodeOptions): Logger {
  return options.log ?? createLogger({ level: 'warn', name: 'pilot-node' });
}
