import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex, PassThrough } from 'node:stream';
import { pilotPaths } from '../../src/config/home.js';
import { PilotError } from '../../src/errors.js';
import type {
  CliConn,
  CliContext,
  CliDatagram,
  CliListener,
  DaemonClient,
  RegistryLookup,
} from '../../src/cli/context.js';
import { main } from '../../src/cli/main.js';
import { Output, type Writer } from '../../src/cli/output.js';
import type { Addr } from '../../src/protocol/address.js';
import type { DialOptions } from '../../src/sdk/types.js';

export class Collector implements Writer {
  text = '';
  constructor(readonly isTTY = false) {}
  write(chunk: string | Uint8Array): boolean {
    this.text += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
    return true;
  }
}

/** A stream that writes back whatever it receives, like the echo service. */
export class EchoConn extends Duplex implements CliConn {
  constructor(readonly id = 1) {
    super();
  }
  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.push(chunk);
    cb();
  }
  override _final(cb: (err?: Error | null) => void): void {
    this.push(null);
    cb();
  }
}

export interface Call {
  readonly method: string;
  readonly args: readonly unknown[];
}

/** A daemon stand-in: records every call, echoes streams, answers with canned replies. */
export function fakeDriver(overrides: Partial<DaemonClient> = {}): { driver: DaemonClient; calls: Call[] } {
  const calls: Call[] = [];
  const rec =
    <T>(method: string, reply: T) =>
    async (...args: unknown[]): Promise<T> => {
      calls.push({ method, args });
      return reply;
    };
  const base: DaemonClient = {
    info: rec('info', { node_id: 5, address: '0:0000.0000.0005', hostname: 'alice', peer_list: [], conn_list: [] }),
    dial: async (addr: Addr, port: number, options?: DialOptions) => {
      calls.push({ method: 'dial', args: [addr, port] });
      const conn = new EchoConn();
      // As the SDK does: the first bytes are written as the connection opens.
      if (options?.data !== undefined && options.data.length > 0) conn.write(options.data);
      return conn;
    },
    listen: async (port: number): Promise<CliListener> => {
      calls.push({ method: 'listen', args: [port] });
      const iter = (async function* () {})();
      return Object.assign(iter, { close: async () => undefined });
    },
    sendTo: rec('sendTo', undefined),
    datagrams: (): AsyncIterable<CliDatagram> => (async function* () {})(),
    handshake: rec('handshake', { node_id: 9, status: 'sent' }),
    approve: rec('approve', { node_id: 9, status: 'approved' }),
    reject: rec('reject', { node_id: 9, status: 'rejected' }),
    untrust: rec('untrust', { node_id: 9, status: 'revoked' }),
    pending: rec('pending', []),
    trusted: rec('trusted', []),
    outgoing: rec('outgoing', []),
    resolveHostname: async (name: string) => {
      calls.push({ method: 'resolveHostname', args: [name] });
      if (name !== 'bob')
        throw new PilotError('not_found', `resolve hostname: daemon: hostname "${name}" is not registered`);
      return { type: 'resolve_hostname_ok', node_id: 7, address: '0:0000.0000.0007', hostname: 'bob', public: true };
    },
    setHostname: rec('setHostname', { type: 'set_hostname_ok', node_id: 5, hostname: 'alice' }),
    setVisibility: rec('setVisibility', { type: 'set_visibility_ok', node_id: 5, visibility: 'public' }),
    setTags: rec('setTags', { type: 'set_tags_ok', node_id: 5, tags: ['a'] }),
    setWebhook: rec('setWebhook', { webhook: 'x' }),
    setTaskExec: rec('setTaskExec', { type: 'set_task_exec_ok', node_id: 5, task_exec: true }),
    deregister: rec('deregister', { type: 'deregister_ok' }),
    disconnect: rec('disconnect', undefined),
    close: rec('close', undefined),
  };
  return { driver: { ...base, ...overrides }, calls };
}

export interface Harness {
  readonly home: string;
  readonly stdout: Collector;
  readonly stderr: Collector;
  run(argv: readonly string[]): Promise<number>;
  cleanup(): Promise<void>;
}

export interface HarnessOptions {
  driver?: DaemonClient;
  registry?: RegistryLookup;
  stdin?: NodeJS.ReadableStream & { isTTY?: boolean };
  stderrTTY?: boolean;
  /** Stands for Ctrl-C: abort it to interrupt the running command. */
  interrupt?: AbortSignal;
  env?: NodeJS.ProcessEnv;
  /** The daemon and rendezvous entry scripts "daemon start" runs. */
  scripts?: { daemon: string; rendezvous: string };
}

export async function harness(options: HarnessOptions = {}): Promise<Harness> {
  const home = await mkdtemp(join(tmpdir(), 'pilotctl-test-'));
  const stdout = new Collector();
  const stderr = new Collector(options.stderrTTY ?? false);
  const env = { PILOT_HOME: home, PILOT_SOCKET: join(home, 'pilot.sock'), ...options.env };
  const makeContext = (json: boolean): CliContext => ({
    env,
    paths: pilotPaths(home),
    out: new Output(stdout, stderr, json),
    stdin: options.stdin ?? Object.assign(new PassThrough(), { isTTY: true }),
    connectDriver: async () => {
      if (options.driver === undefined)
        throw new PilotError('not_running', 'daemon is not running', 'start it with: pilotctl daemon start');
      return options.driver;
    },
    connectRegistry: () => options.registry ?? { lookup: async () => ({}), close: () => undefined },
    scripts: options.scripts ?? {
      daemon: '/nonexistent/pilot-daemon.js',
      rendezvous: '/nonexistent/pilot-rendezvous.js',
    },
    node: { execPath: process.execPath, execArgv: [] },
    interrupt: options.interrupt ?? new AbortController().signal,
  });
  return {
    home,
    stdout,
    stderr,
    run: (argv) => main(argv, makeContext),
    cleanup: () => rm(home, { recursive: true, force: true }),
  };
}
