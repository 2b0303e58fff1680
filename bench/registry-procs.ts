/**
 * The processes of bench:registry: registries under test (bench/registry-server.ts, each in its
 * own process), the load threads (bench/registry-worker.ts) and the identities they sign with.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { WorkerCommand } from './registry-worker.js';

/**
 * BENCH_REGISTRY_SERVER_ROOT runs the registry of another checkout (its bench/registry-server.ts,
 * e.g. an older commit for a before/after comparison under the same load); BENCH_REGISTRY_NODE_ARGS
 * adds node options to the registry process (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`).
 */
const SERVER_SCRIPT =
  process.env.BENCH_REGISTRY_SERVER_ROOT === undefined
    ? fileURLToPath(new URL('./registry-server.ts', import.meta.url))
    : join(process.env.BENCH_REGISTRY_SERVER_ROOT, 'bench', 'registry-server.ts');
const NODE_ARGS = (process.env.BENCH_REGISTRY_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
const WORKER_SCRIPT = new URL('./registry-worker.ts', import.meta.url).href;
/** tsx's `--import` hooks stay on the main thread: a worker registers them itself before loading its script. */
const WORKER_BOOT = `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((m) => { m.register(); return import(${JSON.stringify(WORKER_SCRIPT)}); })`;

export interface Mem {
  rss: number;
  heapUsed: number;
  external: number;
  /** CPU time (user + system) the process used since it started. */
  cpuMs: number;
}

/** The registry in a child process. */
export class RegistryProcess {
  private constructor(
    readonly child: ChildProcess,
    readonly port: number,
    /** Spawn until listening. */
    readonly readyS: number,
    /** RegistryServer.start alone. */
    readonly startS: number,
  ) {}

  static async start(storePath: string, port = 0): Promise<RegistryProcess> {
    const t0 = performance.now();
    const child = spawn(
      process.execPath,
      [...NODE_ARGS, '--expose-gc', '--import', 'tsx', SERVER_SCRIPT, storePath, String(port)],
      {
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      },
    );
    const ready = await new Promise<{ port: number; startMs: number }>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the registry did not start within 60 s')), 60_000);
      child.once('exit', (code) => reject(new Error(`the registry exited with ${String(code)} before listening`)));
      child.on('message', (m: { type?: string; port?: number; startMs?: number }) => {
        if (m.type !== 'ready') return;
        clearTimeout(timer);
        resolve({ port: m.port ?? 0, startMs: m.startMs ?? 0 });
      });
    });
    return new RegistryProcess(child, ready.port, (performance.now() - t0) / 1000, ready.startMs / 1000);
  }

  mem(): Promise<Mem> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no memory report from the registry')), 30_000);
      const onMessage = (m: Mem & { type?: string }): void => {
        if (m.type !== 'mem') return;
        clearTimeout(timer);
        this.child.off('message', onMessage);
        resolve(m);
      };
      this.child.on('message', onMessage);
      this.child.send({ type: 'mem' });
    });
  }

  /** CPU time (user + system, ms) the process used so far. */
  cpu(): Promise<number> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no CPU report from the registry')), 30_000);
      const onMessage = (m: { type?: string; cpuMs?: number }): void => {
        if (m.type !== 'cpu') return;
        clearTimeout(timer);
        this.child.off('message', onMessage);
        resolve(m.cpuMs ?? 0);
      };
      this.child.on('message', onMessage);
      this.child.send({ type: 'cpu' });
    });
  }

  /** SIGTERM (a clean close), SIGKILL after 10 s. */
  stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
      this.child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      this.child.kill('SIGTERM');
    });
  }
}

/** A worker thread of bench/registry-worker.ts, one command at a time. */
export class LoadThread {
  readonly #worker = new Worker(WORKER_BOOT, { eval: true });

  call<T>(cmd: WorkerCommand): Promise<T> {
    return new Promise((resolve, reject) => {
      const onMessage = (m: { type?: string; message?: string }): void => {
        this.#worker.off('error', onError);
        if (m.type === 'error') reject(new Error(m.message));
        else resolve(m as T);
      };
      const onError = (err: Error): void => {
        this.#worker.off('message', onMessage);
        reject(err);
      };
      this.#worker.once('message', onMessage);
      this.#worker.once('error', onError);
      this.#worker.postMessage(cmd);
    });
  }

  /** Asks the thread to close its connections (2 s at most: it may have failed to start), then ends it. */
  async close(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.call({ cmd: 'close' }).catch(() => undefined),
      new Promise((r) => (timer = setTimeout(r, 2000))),
    ]);
    clearTimeout(timer);
    await this.#worker.terminate();
  }
}

export interface Keys {
  readonly privateKeys: KeyObject[];
  readonly publicKeys: string[];
}

export function generateKeys(n: number): Keys {
  const privateKeys: KeyObject[] = [];
  const publicKeys: string[] = [];
  for (let i = 0; i < n; i++) {
    const pair = generateKeyPairSync('ed25519');
    privateKeys.push(pair.privateKey);
    const der = pair.publicKey.export({ format: 'der', type: 'spki' });
    publicKeys.push(der.subarray(der.length - 32).toString('base64'));
  }
  return { privateKeys, publicKeys };
}
