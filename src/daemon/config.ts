import { DEFAULT_BEACON, DEFAULT_REGISTRY, DEFAULT_SOCKET, pilotHome } from '../config/home.js';
import type { LogFormat } from '../log.js';
import { parseLogFormat, configFileFlags, LOG_FORMAT_FLAG, parseGoFlags, type FlagSpec } from '../config/go-flags.js';
import { PilotError } from '../errors.js';
import { splitHostPort } from '../protocol/host-port.js';
import { normalizeFingerprint } from '../registry/tls-pin.js';

/** What one running node is made of, whichever process hosts it. */
export interface NodeConfig {
  registry: string;
  /** TLS to the registry, pinned to its certificate (normalised SHA-256 hex). */
  registryTls?: { fingerprint: string };
  beacon?: string;
  listen: string;
  /** Public UDP endpoint to register instead of discovering it. */
  endpoint?: string;
  encrypt: boolean;
  /** Identity file; without it the node gets a fresh identity (and id) every start. */
  identity?: string;
  owner?: string;
  keepaliveMs: number;
  idleTimeoutMs: number;
  synRateLimit: number;
  synRatePerSource: number;
  /** Data exchange limits per sender; undefined = PILOT_DX_QUOTA_BYTES / PILOT_DX_RATE or the defaults. */
  inboxQuotaBytes?: number;
  inboxRate?: number;
  maxConnsPerPort: number;
  maxConnsTotal: number;
  timeWaitMs: number;
  public: boolean;
  hostname?: string;
  webhook?: string;
  echo: boolean;
  dataExchange: boolean;
  eventStream: boolean;
  taskSubmit: boolean;
  /** Directory for inbox/, received/, tasks/ (the pilot home). */
  home: string;
}

/** The node plus what its process adds: the IPC socket and the log. */
export interface DaemonConfig extends NodeConfig {
  socket: string;
  logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'silent';
  logFormat: LogFormat;
}

/** Flags of the reference daemon (PROTOCOL.md §10.4), plus `-no-tasksubmit` and `-home`. */
export const DAEMON_FLAGS = {
  registry: { kind: 'string', help: `registry address (default ${DEFAULT_REGISTRY})` },
  beacon: { kind: 'string', help: `beacon address (default ${DEFAULT_BEACON})` },
  listen: { kind: 'string', help: 'UDP listen address (default :0)' },
  socket: { kind: 'string', help: `IPC socket path (default ${DEFAULT_SOCKET})` },
  endpoint: { kind: 'string', help: 'public host:port to register instead of discovering it' },
  encrypt: { kind: 'bool', help: 'encrypt tunnels (default true)' },
  'registry-tls': { kind: 'bool', help: 'connect to the registry over TLS (needs -registry-fingerprint)' },
  'registry-fingerprint': {
    kind: 'string',
    help: 'SHA-256 (hex) of the registry certificate, as the registry prints it at start',
  },
  identity: { kind: 'string', help: 'identity file (Ed25519); empty = new identity every start' },
  owner: { kind: 'string', help: 'owner string sent at registration' },
  keepalive: { kind: 'duration', help: 'keepalive and heartbeat interval (default 30s)' },
  'idle-timeout': { kind: 'duration', help: 'close connections idle this long (default 120s)' },
  'syn-rate-limit': { kind: 'int', help: 'new inbound connections per second (default 100)' },
  'syn-rate-per-source': { kind: 'int', help: 'new inbound connections per second from one node (default 100)' },
  'max-conns-per-port': { kind: 'int', help: 'connections per port (default 1024)' },
  'max-conns-total': { kind: 'int', help: 'connections in all (default 4096)' },
  'time-wait': { kind: 'duration', help: 'TIME_WAIT duration (default 10s)' },
  public: { kind: 'bool', help: 'make this node resolvable by every node' },
  hostname: { kind: 'string', help: 'hostname to register' },
  webhook: { kind: 'string', help: 'webhook URL for events' },
  'inbox-quota': { kind: 'int', help: 'bytes one sender may keep in inbox/ and received/ (default 268435456)' },
  'inbox-rate': { kind: 'int', help: 'messages and files per second one sender may store (default 100)' },
  'no-echo': { kind: 'bool', help: 'do not serve echo (port 7)' },
  'no-dataexchange': { kind: 'bool', help: 'do not serve data exchange (port 1001)' },
  'no-eventstream': { kind: 'bool', help: 'do not serve the event stream (port 1002)' },
  'no-tasksubmit': { kind: 'bool', help: 'do not serve task submission (port 1003)' },
  'log-level': { kind: 'string', help: 'trace, debug, info, warn, error (default info)' },
  'log-format': LOG_FORMAT_FLAG,
  config: { kind: 'string', help: 'JSON file whose keys are flag names' },
  home: { kind: 'string', help: 'pilot home for inbox/received/tasks (default $PILOT_HOME or ~/.pilot)' },
  help: { kind: 'bool', help: 'show this help' },
  version: { kind: 'bool', help: 'print the version and exit' },
} as const satisfies FlagSpec;

const LOG_LEVELS = new Set(['trace', 'debug', 'info', 'warn', 'error', 'silent']);

type Raw = Record<string, string | number | boolean | undefined>;

function positiveInt(v: unknown, name: string, fallback: number): number {
  if (v === undefined || v === 0) return fallback;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
    throw new PilotError('invalid_argument', `-${name} must be a positive integer`);
  return v;
}

function hostPort(v: unknown, name: string, fallback: string): string {
  if (v === undefined || v === '') return fallback;
  const host = typeof v === 'string' ? splitHostPort(v)?.host : undefined;
  if (typeof v !== 'string' || host === undefined || /\s/.test(host)) {
    throw new PilotError('invalid_argument', `-${name} must be host:port, got ${JSON.stringify(v)}`);
  }
  return v;
}

/** The reference's rule: TLS only with a pinned certificate, and a pin only with TLS. */
function registryTls(tls: boolean, fingerprint: string | undefined): { fingerprint: string } | undefined {
  const hint = 'the registry prints it at start: "registry TLS fingerprint <hex>"';
  if (tls && fingerprint === undefined)
    throw new PilotError('invalid_argument', '-registry-tls needs -registry-fingerprint', hint);
  if (!tls && fingerprint !== undefined)
    throw new PilotError('invalid_argument', '-registry-fingerprint needs -registry-tls', 'add -registry-tls');
  return fingerprint === undefined
    ? undefined
    : { fingerprint: normalizeFingerprint(fingerprint, '-registry-fingerprint') };
}

export function parseDaemonArgs(
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): DaemonConfig | 'help' | 'version' {
  const { flags, positionals } = parseGoFlags(argv, DAEMON_FLAGS);
  if (flags.help) return 'help';
  if (flags.version) return 'version';
  if (positionals.length > 0) throw new PilotError('invalid_argument', `unexpected argument: ${positionals[0]}`);
  const raw: Raw = { ...(flags.config ? configFileFlags(flags.config, DAEMON_FLAGS) : {}), ...flags };
  const logFormat = parseLogFormat(typeof raw['log-format'] === 'string' ? raw['log-format'] : undefined);
  const level = typeof raw['log-level'] === 'string' ? raw['log-level'] : 'info';
  if (!LOG_LEVELS.has(level))
    throw new PilotError('invalid_argument', `-log-level must be one of ${[...LOG_LEVELS].join(', ')}`);
  const str = (k: string): string | undefined =>
    typeof raw[k] === 'string' && raw[k] !== '' ? (raw[k] as string) : undefined;
  const tls = registryTls(raw['registry-tls'] === true, str('registry-fingerprint'));
  const webhook = str('webhook');
  if (webhook && !/^https?:\/\//.test(webhook))
    throw new PilotError('invalid_argument', '-webhook must start with http:// or https://');
  const endpoint = str('endpoint');
  return {
    registry: hostPort(raw.registry, 'registry', DEFAULT_REGISTRY),
    ...(tls ? { registryTls: tls } : {}),
    beacon: hostPort(raw.beacon, 'beacon', DEFAULT_BEACON),
    listen: hostPort(raw.listen, 'listen', ':0'),
    socket: str('socket') ?? DEFAULT_SOCKET,
    ...(endpoint ? { endpoint: hostPort(endpoint, 'endpoint', '') } : {}),
    encrypt: raw.encrypt !== false,
    ...(str('identity') ? { identity: str('identity') } : {}),
    ...(str('owner') ? { owner: str('owner') } : {}),
    keepaliveMs: positiveInt(raw.keepalive, 'keepalive', 30_000),
    idleTimeoutMs: positiveInt(raw['idle-timeout'], 'idle-timeout', 120_000),
    synRateLimit: positiveInt(raw['syn-rate-limit'], 'syn-rate-limit', 100),
    synRatePerSource: positiveInt(raw['syn-rate-per-source'], 'syn-rate-per-source', 100),
    ...(raw['inbox-quota'] !== undefined ? { inboxQuotaBytes: positiveInt(raw['inbox-quota'], 'inbox-quota', 0) } : {}),
    ...(raw['inbox-rate'] !== undefined ? { inboxRate: positiveInt(raw['inbox-rate'], 'inbox-rate', 0) } : {}),
    maxConnsPerPort: positiveInt(raw['max-conns-per-port'], 'max-conns-per-port', 1024),
    maxConnsTotal: positiveInt(raw['max-conns-total'], 'max-conns-total', 4096),
    timeWaitMs: positiveInt(raw['time-wait'], 'time-wait', 10_000),
    public: raw.public === true,
    ...(str('hostname') ? { hostname: str('hostname') } : {}),
    ...(webhook ? { webhook } : {}),
    echo: raw['no-echo'] !== true,
    dataExchange: raw['no-dataexchange'] !== true,
    eventStream: raw['no-eventstream'] !== true,
    taskSubmit: raw['no-tasksubmit'] !== true,
    logLevel: level as DaemonConfig['logLevel'],
    logFormat,
    home: str('home') ?? pilotHome(env),
  };
}
