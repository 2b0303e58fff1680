import { stat } from 'node:fs/promises';
import { createConnection } from 'node:net';
import type { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { pilotHome, pilotPaths, type PilotPaths } from '../config/home.js';
import { PilotError } from '../errors.js';
import type { Addr } from '../protocol/address.js';
import type { DialOptions } from '../sdk/types.js';
import { Output, type Writer } from './output.js';

/** A stream connection as the CLI uses it. */
export type CliConn = Duplex & { readonly id: number };

export interface CliListener extends AsyncIterable<CliConn> {
  close(): Promise<void>;
}

export interface CliDatagram {
  readonly srcAddr: Addr;
  readonly srcPort: number;
  readonly dstPort: number;
  readonly data: Buffer;
}

/**
 * The part of the SDK driver the commands use. Replies that are registry or daemon JSON objects
 * are typed `unknown` here and turned into plain JSON by the command that prints them.
 */
export interface DaemonClient {
  info(): Promise<unknown>;
  dial(addr: Addr, port: number, options?: DialOptions): Promise<CliConn>;
  listen(port: number): Promise<CliListener>;
  sendTo(addr: Addr, port: number, data: Uint8Array): Promise<void>;
  datagrams(options?: { port?: number; signal?: AbortSignal }): AsyncIterable<CliDatagram>;
  handshake(nodeId: number, justification?: string): Promise<unknown>;
  approve(nodeId: number): Promise<unknown>;
  reject(nodeId: number, reason?: string): Promise<unknown>;
  untrust(nodeId: number): Promise<unknown>;
  pending(): Promise<unknown>;
  trusted(): Promise<unknown>;
  /** The handshake requests this node sent (pilot-ts daemons). */
  outgoing(): Promise<unknown>;
  resolveHostname(name: string): Promise<unknown>;
  setHostname(name: string): Promise<unknown>;
  setVisibility(isPublic: boolean): Promise<unknown>;
  setTags(tags: string[]): Promise<unknown>;
  setWebhook(url: string): Promise<unknown>;
  setTaskExec(enabled: boolean): Promise<unknown>;
  deregister(): Promise<unknown>;
  disconnect(connId: number): Promise<void>;
  close(): Promise<void>;
}

export interface RegistryLookup {
  lookup(nodeId: number): Promise<unknown>;
  close(): void;
}

export type ReadableInput = NodeJS.ReadableStream & { readonly isTTY?: boolean };

/** Everything a command touches outside itself, injected so commands can run in tests. */
export interface CliContext {
  readonly env: NodeJS.ProcessEnv;
  readonly paths: PilotPaths;
  readonly out: Output;
  readonly stdin: ReadableInput;
  connectDriver(socketPath: string): Promise<DaemonClient>;
  /** `tls`: the registry serves TLS with this pinned certificate. */
  connectRegistry(address: string, tls?: { fingerprint: string }): RegistryLookup;
  /** The pilot-daemon and pilot-rendezvous entry scripts. */
  readonly scripts: { readonly daemon: string; readonly rendezvous: string };
  /** Node executable and flags that run those scripts (keeps `--import tsx` when present). */
  readonly node: { readonly execPath: string; readonly execArgv: readonly string[] };
  /** Aborted by Ctrl-C (SIGINT); a second Ctrl-C exits at once. */
  readonly interrupt: AbortSignal;
}

const CONNECT_TIMEOUT_MS = 5000;

export async function defaultConnectDriver(socketPath: string): Promise<DaemonClient> {
  const exists = await stat(socketPath).then(
    () => true,
    () => false,
  );
  if (!exists) {
    throw new PilotError(
      'not_running',
      `daemon is not running (no socket at ${socketPath})`,
      'start it with: pilotctl daemon start',
    );
  }
  const { Driver } = await import('../sdk/driver.js');
  const driver = await Driver.connect(socketPath, { signal: AbortSignal.timeout(CONNECT_TIMEOUT_MS) }).catch(
    (err: unknown) => {
      throw staleSocketError(socketPath, err) ?? err;
    },
  );
  // Unsolicited daemon errors also fail the request they belong to; unhandled they would crash.
  driver.on('error', () => undefined);
  return driver;
}

/**
 * The socket file is there but nothing answers on it (the daemon was killed, e.g. `kill -9`, and
 * could not remove it), or the path is not a socket at all.
 */
function staleSocketError(socketPath: string, err: unknown): PilotError | undefined {
  const cause = err instanceof Error ? (err.cause as NodeJS.ErrnoException | undefined) : undefined;
  const code = cause?.code ?? (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ECONNREFUSED') {
    return new PilotError(
      'not_running',
      `daemon is not running (stale socket ${socketPath}: the file exists but no daemon listens on it)`,
      'the daemon ended without removing it (killed or crashed); start it again with: pilotctl daemon start',
      { cause: err },
    );
  }
  if (code === 'ENOTSOCK') {
    return new PilotError(
      'not_running',
      `daemon is not running (${socketPath} is not a socket)`,
      'check PILOT_SOCKET and the socket key of config.json',
      { cause: err },
    );
  }
  return undefined;
}

/** Probes a socket path without a daemon protocol exchange: 'missing', 'stale' (nobody listens) or 'listening'. */
export function socketState(socketPath: string): Promise<'missing' | 'stale' | 'listening'> {
  return new Promise((resolve) => {
    const sock = createConnection({ path: socketPath });
    const done = (state: 'missing' | 'stale' | 'listening'): void => {
      sock.destroy();
      resolve(state);
    };
    sock.setTimeout(1000, () => done('listening'));
    sock.once('connect', () => done('listening'));
    sock.once('error', (err: NodeJS.ErrnoException) => done(err.code === 'ENOENT' ? 'missing' : 'stale'));
  });
}

/** The reason of an aborted `interrupt` signal. */
export class InterruptedError extends Error {
  override readonly name = 'InterruptedError';
  constructor() {
    super('interrupted');
  }
}

/** An AbortSignal that Ctrl-C (SIGINT) aborts; a second Ctrl-C exits with status 130 at once. */
export function interruptSignal(): AbortSignal {
  const ac = new AbortController();
  process.on('SIGINT', () => {
    if (ac.signal.aborted) process.exit(130);
    ac.abort(new InterruptedError());
  });
  return ac.signal;
}

export function defaultConnectRegistry(address: string, tls?: { fingerprint: string }): RegistryLookup {
  let client: RegistryLookup | undefined;
  const load = async (): Promise<RegistryLookup> => {
    const { RegistryClient } = await import('../registry/client.js');
    client ??= new RegistryClient({ address, ...(tls !== undefined ? { tls } : {}) });
    return client;
  };
  return {
    lookup: async (nodeId) => (await load()).lookup(nodeId),
    close: () => client?.close(),
  };
}

/** Entry scripts live next to this CLI: src/bin/*.ts under tsx, dist/bin/*.js when built. */
export function entryScripts(moduleUrl: string = import.meta.url): { daemon: string; rendezvous: string } {
  const ext = moduleUrl.endsWith('.ts') ? 'ts' : 'js';
  return {
    daemon: fileURLToPath(new URL(`../bin/pilot-daemon.${ext}`, moduleUrl)),
    rendezvous: fileURLToPath(new URL(`../bin/pilot-rendezvous.${ext}`, moduleUrl)),
  };
}

export interface ProcessContextOptions {
  readonly json: boolean;
  readonly env?: NodeJS.ProcessEnv;
  readonly stdout?: Writer;
  readonly stderr?: Writer;
}

export function processContext(options: ProcessContextOptions): CliContext {
  const env = options.env ?? process.env;
  return {
    env,
    paths: pilotPaths(pilotHome(env)),
    out: new Output(options.stdout ?? process.stdout, options.stderr ?? process.stderr, options.json),
    stdin: process.stdin,
    connectDriver: defaultConnectDriver,
    connectRegistry: defaultConnectRegistry,
    scripts: entryScripts(),
    node: { execPath: process.execPath, execArgv: process.execArgv },
    interrupt: interruptSignal(),
  };
}
