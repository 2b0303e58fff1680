/**
 * The NATS side of the pub/sub benchmark: a nats-server on a free loopback port, driven by the
 * official `nats` client the way its documentation recommends for throughput (publish without
 * waiting, `flush()` every FLUSH_EVERY messages, subscriptions with a callback).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { connect, type NatsConnection } from 'nats';
import { stopProcess } from '../test/e2e/cluster.js';
import { cpuMeter, EVENT_SIZE, paced, stamp, stamped, Tally, type Latency, type Throughput } from './pubsub-tally.js';

const FLUSH_EVERY = 1000;
const SUBJECT = 'bench';

export interface NatsServer {
  readonly port: number;
  readonly pid: number | undefined;
  stop(): Promise<void>;
}

export function natsInstalled(): boolean {
  return spawnSync('nats-server', ['--version'], { stdio: 'ignore' }).status === 0;
}

export async function startNats(): Promise<NatsServer> {
  const child: ChildProcess = spawn('nats-server', ['-a', '127.0.0.1', '-p', '-1'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    let text = '';
    const onData = (c: Buffer): void => {
      text += c.toString();
      const m = text.match(/Listening for client connections on [^\s]*:(\d+)/);
      if (m) resolve(Number(m[1]));
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => reject(new Error(`nats-server exited (${String(code)}): ${text}`)));
    setTimeout(() => reject(new Error(`nats-server did not start: ${text}`)), 10_000).unref();
  });
  return { port, pid: child.pid, stop: () => stopProcess(child) };
}

async function subscribers(port: number, n: number, tally: Tally): Promise<NatsConnection[]> {
  const conns = await Promise.all(Array.from({ length: n }, () => connect({ servers: `127.0.0.1:${port}` })));
  for (const nc of conns) nc.subscribe(SUBJECT, { callback: (_err, msg) => tally.record(msg.data) });
  // The subscriptions are in place at the server once each connection's PING is answered.
  await Promise.all(conns.map((nc) => nc.flush()));
  return conns;
}

async function closeAll(conns: readonly NatsConnection[]): Promise<void> {
  await Promise.all(conns.map((nc) => nc.close().catch(() => undefined)));
}

/** Open loop: publish every event as fast as the client takes them, flushing every FLUSH_EVERY. */
export async function natsThroughput(server: NatsServer, subs: number, events: number): Promise<Throughput> {
  const port = server.port;
  const tally = new Tally(false, events * subs);
  const conns = await subscribers(port, subs, tally);
  const pub = await connect({ servers: `127.0.0.1:${port}` });
  const payload = Buffer.alloc(EVENT_SIZE, 0x61);
  const cpu = cpuMeter([server.pid]);
  const started = performance.now();
  for (let i = 1; i <= events; i++) {
    pub.publish(SUBJECT, stamp(payload));
    if (i % FLUSH_EVERY === 0) await pub.flush();
  }
  await pub.flush();
  await tally.settle();
  const result = tally.throughput(started, cpu());
  await closeAll([pub, ...conns]);
  return result;
}

/** Publish-to-delivery latency at a fixed publish rate. */
export async function natsLatency(port: number, subs: number, events: number, rate: number): Promise<Latency> {
  const tally = new Tally(true, events * subs);
  const conns = await subscribers(port, subs, tally);
  const pub = await connect({ servers: `127.0.0.1:${port}` });
  await paced(events, rate, () => pub.publish(SUBJECT, stamped()));
  await pub.flush();
  await tally.settle();
  const result = tally.latency();
  await closeAll([pub, ...conns]);
  return result;
}
