import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { SERVER_NODE_FLAGS } from '../../src/config/node-flags.js';
import { TcpBalancer } from './registry-balancer.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** Command line for one of the package's executables: the built file when present, else the source through tsx. */
export function binCommand(name: string): string[] {
  const built = join(ROOT, 'dist', 'bin', `${name}.js`);
  if (existsSync(built) && process.env.PILOT_TEST_FROM_SOURCE !== '1') return [built];
  return ['--import', 'tsx', join(ROOT, 'src', 'bin', `${name}.ts`)];
}

export interface Spawned {
  readonly child: ChildProcess;
  readonly lines: string[];
  /** The last 200 stderr lines (the log). */
  readonly stderr: string[];
  /** Resolves with the first stdout line that matches. */
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
}

export function spawnBin(name: string, args: string[], env: NodeJS.ProcessEnv = {}): Spawned {
  // PILOT_TEST_NODE_ARGS adds Node flags to every spawned process (e.g. --cpu-prof for profiling).
  const nodeArgs = process.env.PILOT_TEST_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
  // The servers run with the flags their executables' #! lines give them.
  const serverArgs = name === 'pilotctl' ? [] : SERVER_NODE_FLAGS;
  const child = spawn(process.execPath, [...serverArgs, ...nodeArgs, ...binCommand(name), ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const stderr: string[] = [];
  const waiters: { re: RegExp; resolve: (m: RegExpMatchArray) => void }[] = [];
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
    lines.push(line);
    for (const w of [...waiters]) {
      const m = line.match(w.re);
      if (m) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  });
  createInterface({ input: child.stderr as NodeJS.ReadableStream }).on('line', (line) => {
    stderr.push(line);
    if (stderr.length > 200) stderr.shift();
  });
  return {
    child,
    lines,
    stderr,
    waitFor(re, timeoutMs = 15_000) {
      for (const line of lines) {
        const m = line.match(re);
        if (m) return Promise.resolve(m);
      }
      return new Promise((resolvePromise, reject) => {
        const timer = setTimeout(
          () =>
            reject(
              new Error(
                `${name}: no line matching ${re} within ${timeoutMs} ms; stderr:\n${stderr.slice(-30).join('\n')}`,
              ),
            ),
          timeoutMs,
        );
        const onExit = (code: number | null): void => {
          clearTimeout(timer);
          reject(new Error(`${name} exited (${code}) before printing ${re}; stderr:\n${stderr.slice(-30).join('\n')}`));
        };
        child.once('exit', onExit);
        waiters.push({
          re,
          resolve: (m) => {
            clearTimeout(timer);
            child.off('exit', onExit);
            resolvePromise(m);
          },
        });
      });
    },
  };
}

export async function stopProcess(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

export interface DaemonHandle {
  readonly name: string;
  readonly home: string;
  readonly socket: string;
  nodeId: number;
  address: string;
  proc: Spawned;
  readonly args: string[];
}

export interface ClusterOptions {
  /** The registry store (default: a SQLite file in the cluster's directory). */
  readonly store?: string;
  /** Registry processes on that store (default 1); with more, daemons reach them through a TCP balancer. */
  readonly registries?: number;
  /** Extra flags for every registry process. */
  readonly registryArgs?: readonly string[];
}

/** A registry + beacon and any number of daemons, each with its own home, on 127.0.0.1. */
export class Cluster {
  readonly daemons: DaemonHandle[] = [];
  registryPort = 0;
  beaconPort = 0;
  rendezvous!: Spawned;
  /** Registry processes beyond the rendezvous (several registries on one shared store). */
  readonly registries: Spawned[] = [];
  balancer: TcpBalancer | undefined;

  private constructor(
    readonly dir: string,
    readonly opts: ClusterOptions = {},
  ) {}

  static async start(opts: ClusterOptions = {}): Promise<Cluster> {
    const dir = await mkdtemp(join(tmpdir(), 'pilot-e2e-'));
    const cluster = new Cluster(dir, opts);
    await cluster.startRendezvous();
    const ports = [cluster.registryPort];
    for (let i = 1; i < (opts.registries ?? 1); i++) {
      const reg = spawnBin('pilot-registry', [
        '-addr',
        '127.0.0.1:0',
        '-store',
        opts.store ?? '',
        ...(opts.registryArgs ?? []),
      ]);
      cluster.registries.push(reg);
      ports.push(Number((await reg.waitFor(/registry listening on .*:(\d+)/))[1]));
    }
    if (ports.length > 1) cluster.balancer = await TcpBalancer.start(ports);
    return cluster;
  }

  get registry(): string {
    return `127.0.0.1:${this.balancer?.port ?? this.registryPort}`;
  }

  async startRendezvous(): Promise<void> {
    const ports = this.registryPort
      ? [`127.0.0.1:${this.registryPort}`, `127.0.0.1:${this.beaconPort}`]
      : ['127.0.0.1:0', '127.0.0.1:0'];
    this.rendezvous = spawnBin('pilot-rendezvous', [
      '-registry-addr',
      ports[0] as string,
      '-beacon-addr',
      ports[1] as string,
      '-store',
      this.opts.store ?? join(this.dir, 'registry.db'),
      ...(this.opts.registryArgs ?? []),
    ]);
    const [r, b] = await Promise.all([
      this.rendezvous.waitFor(/registry listening on .*:(\d+)/),
      this.rendezvous.waitFor(/beacon listening on .*:(\d+)/),
    ]);
    this.registryPort = Number(r[1]);
    this.beaconPort = Number(b[1]);
  }

  async addDaemon(name: string, extra: string[] = []): Promise<DaemonHandle> {
    const home = join(this.dir, name);
    await mkdir(home, { recursive: true, mode: 0o700 });
    const socket = join(this.dir, `${name}.sock`);
    const args = [
      '-registry',
      this.registry,
      '-beacon',
      `127.0.0.1:${this.beaconPort}`,
      '-listen',
      '127.0.0.1:0',
      '-socket',
      socket,
      '-identity',
      join(home, 'identity.key'),
      '-home',
      home,
      '-log-level',
      'warn',
      ...extra,
    ];
    const handle: DaemonHandle = {
      name,
      home,
      socket,
      nodeId: 0,
      address: '',
      proc: spawnBin('pilot-daemon', args, { PILOT_HOME: home }),
      args,
    };
    await this.ready(handle);
    this.daemons.push(handle);
    return handle;
  }

  private async ready(d: DaemonHandle): Promise<void> {
    const m = await d.proc.waitFor(/daemon ready (\S+) node (\d+)/);
    d.address = m[1] as string;
    d.nodeId = Number(m[2]);
  }

  async restartDaemon(d: DaemonHandle, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await stopProcess(d.proc.child, signal);
    d.proc = spawnBin('pilot-daemon', d.args, { PILOT_HOME: d.home });
    await this.ready(d);
  }

  async stop(): Promise<void> {
    await Promise.all(this.daemons.map((d) => stopProcess(d.proc.child)));
    await this.balancer?.close();
    await Promise.all(this.registries.map((r) => stopProcess(r.child)));
    await stopProcess(this.rendezvous.child);
    await rm(this.dir, { recursive: true, force: true });
  }
}
