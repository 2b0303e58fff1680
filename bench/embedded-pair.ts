/**
 * Two embedded nodes in two processes of their own (the `mode: "embedded"` rows of bench:ping and
 * bench:echo). Each child runs `createNode()` and takes commands from the parent over the IPC
 * channel; node a runs the measurements against node b's echo service.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { SERVER_NODE_FLAGS } from '../src/config/node-flags.js';
import type { EmbeddedNode } from '../src/index.js';
import type { Cluster } from '../test/e2e/cluster.js';
import { BenchError, poll, withTimeout } from './lib.js';
import { echoOnce, pingOnce } from './node-measure.js';
import { alternateWithUdp, UdpEcho } from './udp-echo.js';

type Command =
  | { cmd: 'start'; home: string; registry: string; beacon: string }
  | { cmd: 'trust'; node: number; address: string }
  | { cmd: 'ping'; address: string; count: number; gapMs: number; warmUp: number }
  | { cmd: 'echo'; address: string; bytes: number }
  | { cmd: 'stop' };

type Reply = { ok: true; value: unknown } | { ok: false; error: string };

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

type Library = typeof import('../src/index.js');

/**
 * The library as an application runs it: the built package when present (as the daemons of the
 * other rows run), else the source through tsx (PILOT_TEST_FROM_SOURCE=1 forces the source).
 */
let loaded: Library | undefined;

async function library(): Promise<Library> {
  const built = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'index.js');
  loaded ??=
    existsSync(built) && process.env.PILOT_TEST_FROM_SOURCE !== '1'
      ? ((await import(pathToFileURL(built).href)) as Library)
      : await import('../src/index.js');
  return loaded;
}

async function run(node: EmbeddedNode | undefined, c: Command): Promise<unknown> {
  if (c.cmd === 'start') {
    const { createNode } = await library();
    return createNode({ home: c.home, registry: c.registry, beacon: c.beacon, listen: '127.0.0.1:0' });
  }
  if (node === undefined) throw new BenchError('the node has not started');
  switch (c.cmd) {
    case 'trust':
      // Both sides ask: mutual requests are approved on both.
      await node.handshake(c.node, 'bench');
      await poll('trust', 30_000, async () =>
        (await node.trusted()).some((t) => t.node_id === c.node) ? true : undefined,
      );
      await poll('a first stream', 30_000, async () => {
        const conn = await node.dial(c.address, 7, { timeoutMs: 2000 });
        conn.destroy();
        return true;
      });
      return true;
    case 'ping': {
      // The baseline's client is this process, as the pings' (see alternateWithUdp).
      const udp = await UdpEcho.start();
      try {
        for (let i = 0; i < c.warmUp; i++) await pingOnce(node, c.address, i);
        await udp.warmUp(c.warmUp);
        // Let the SYN budget of the warm-up refill completely.
        await sleep(c.gapMs > 0 ? 1000 : 0);
        return await alternateWithUdp(udp, c.count, c.gapMs, (i) => pingOnce(node, c.address, i));
      } finally {
        udp.close();
      }
    }
    case 'echo':
      return echoOnce(node, c.address, c.bytes);
    case 'stop':
      await node.close();
      return true;
  }
}

/** A command a child started with another script (see `EmbeddedPeer.start`) adds to the ones above. */
export type ExtraCommand = { readonly cmd: string } & Record<string, unknown>;

/**
 * Serves the parent's commands in a child process: the ones above, and those `extra` knows
 * (it returns undefined for the ones it does not).
 */
export function serveNode(extra?: (node: EmbeddedNode, c: ExtraCommand) => Promise<unknown> | undefined): void {
  let node: EmbeddedNode | undefined;
  process.on('message', (c: Command) => {
    const own = (): Promise<unknown> => run(node, c);
    const handled = node !== undefined && extra ? extra(node, c as ExtraCommand) : undefined;
    (handled ?? own()).then(
      (value) => {
        if (c.cmd === 'start') {
          node = value as EmbeddedNode;
          const formatAddr = (loaded as Library).formatAddr;
          process.send?.({ ok: true, value: { address: formatAddr(node.localAddr), node: node.localAddr.node } });
        } else process.send?.({ ok: true, value }, () => c.cmd === 'stop' && process.disconnect());
      },
      (err: unknown) => process.send?.({ ok: false, error: String(err) }),
    );
  });
}

if (process.argv[2] === '--child') serveNode();

/** One child process with an embedded node. */
export class EmbeddedPeer {
  address = '';
  node = 0;

  private constructor(readonly child: ChildProcess) {}

  /** `script` (a module calling `serveNode`, with its arguments) defaults to this module. */
  static async start(
    cluster: Cluster,
    name: string,
    script: { path: string; args: string[] } = { path: fileURLToPath(import.meta.url), args: ['--child'] },
  ): Promise<EmbeddedPeer> {
    const child = fork(script.path, script.args, {
      stdio: ['ignore', process.env.CHILD_STDOUT ? 'inherit' : 'ignore', 'inherit', 'ipc'],
      // An agent that cares about latency runs its embedded node as the servers run (see README).
      execArgv: [
        ...SERVER_NODE_FLAGS,
        '--import',
        'tsx',
        ...(process.env.PILOT_TEST_NODE_ARGS?.split(' ').filter(Boolean) ?? []),
      ],
    });
    const peer = new EmbeddedPeer(child);
    const started = (await peer.call({
      cmd: 'start',
      home: join(cluster.dir, name),
      registry: cluster.registry,
      beacon: `127.0.0.1:${cluster.beaconPort}`,
    })) as { address: string; node: number };
    peer.node = started.node;
    peer.address = started.address;
    return peer;
  }

  call(c: Command | ExtraCommand, timeoutMs = 60_000): Promise<unknown> {
    return withTimeout(
      `embedded node: ${c.cmd}`,
      timeoutMs,
      new Promise((resolve, reject) => {
        const onExit = (code: number | null): void => reject(new BenchError(`embedded node exited (${code})`));
        this.child.once('exit', onExit);
        this.child.once('message', (r: Reply) => {
          this.child.off('exit', onExit);
          if (r.ok) resolve(r.value);
          else reject(new BenchError(r.error));
        });
        this.child.send(c);
      }),
    );
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise<void>((r) => this.child.once('exit', () => r()));
    await this.call({ cmd: 'stop' }, 10_000).catch(() => this.child.kill('SIGKILL'));
    await withTimeout('an embedded node process exiting', 10_000, exited).catch(() => this.child.kill('SIGKILL'));
  }
}

/** Embedded nodes a and b, each in its own process, trusting each other. */
export async function embeddedPair(
  cluster: Cluster,
  script?: { path: string; args: string[] },
): Promise<{ a: EmbeddedPeer; b: EmbeddedPeer; close(): Promise<void> }> {
  const [a, b] = await Promise.all([
    EmbeddedPeer.start(cluster, 'ea', script),
    EmbeddedPeer.start(cluster, 'eb', script),
  ]);
  const close = async (): Promise<void> => {
    await Promise.all([a.stop(), b.stop()]);
  };
  try {
    await Promise.all([
      a.call({ cmd: 'trust', node: b.node, address: b.address }),
      b.call({ cmd: 'trust', node: a.node, address: a.address }),
    ]);
  } catch (err) {
    await close();
    throw err;
  }
  return { a, b, close };
}
