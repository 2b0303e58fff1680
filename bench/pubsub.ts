/**
 * Event stream fan-out: one publisher on daemon A publishes 100-byte events to A's broker
 * (port 1002); 1, 10 and 100 subscribers run on daemon B and subscribe to A's broker through an
 * encrypted tunnel. The publisher stays at most WINDOW events ahead of the subscribers (closed
 * loop; when the window is full it sleeps until half of it is delivered), so the figures are
 * sustainable throughput without drops, not queue overflow. NATS runs under the same loop.
 * Reports delivered events/s (events × subscribers / time) and p50/p99 publish-to-delivery
 * latency, then runs the same workload against a nats-server on loopback when one is on PATH.
 * Prints one line per run, then a single JSON object as the last line.
 *
 *   BENCH_EVENTS=N   events per run for one subscriber (default 20000; fewer for more subscribers)
 *   BENCH_SUBS=a,b   subscriber counts to run (default 1,10,100)
 *   BENCH_NATS=0     skip the NATS comparison
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { Driver } from '../src/sdk/driver.js';
import { openPublisher, subscribe, type Subscription } from '../src/sdk/events.js';
import { Cluster, stopProcess } from '../test/e2e/cluster.js';
import { brokerStats, makeTrust, percentile } from '../test/e2e/eventstream-helpers.js';
import { until } from '../test/wait.js';
import { NatsClient } from './nats-client.js';

const SUBSCRIBERS = (process.env.BENCH_SUBS ?? '1,10,100')
  .split(',')
  .map((n) => Number.parseInt(n, 10))
  .filter((n) => n > 0);
const EVENT_SIZE = 100;
const WINDOW = 256;
const BASE_EVENTS = Math.max(100, Number.parseInt(process.env.BENCH_EVENTS ?? '20000', 10) || 20000);
const SUBS_PER_DRIVER = 10;
const RUN_TIMEOUT_MS = 120_000;

interface Measured {
  eventsPerS: number;
  p50: number;
  p99: number;
  delivered: number;
  expected: number;
}

/** Tracks deliveries and latencies across all subscribers of one run. */
class Tally {
  delivered = 0;
  latencies: number[] = [];
  lastAt = 0;
  private waiter: { target: number; resolve: () => void } | undefined;

  record(data: Buffer): void {
    const now = performance.now();
    this.latencies.push(now - data.readDoubleBE(0));
    this.delivered++;
    this.lastAt = now;
    if (this.waiter && this.delivered >= this.waiter.target) {
      const { resolve } = this.waiter;
      this.waiter = undefined;
      resolve();
    }
  }

  /**
   * Resolves once `target` deliveries have been recorded (no polling: the publisher sleeps
   * meanwhile), or after 5 s without reaching it, so that lost events cannot stall the run.
   */
  reached(target: number): Promise<void> {
    if (this.delivered >= target) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        resolve();
      }, 5000);
      this.waiter = {
        target,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
    });
  }
}

function eventsFor(subs: number): number {
  return Math.max(500, Math.floor(BASE_EVENTS / Math.sqrt(subs)));
}

/** Publishes `events` events through `send`, never more than WINDOW ahead of the slowest pace. */
async function drive(
  events: number,
  subs: number,
  tally: Tally,
  send: (payload: Buffer) => Promise<void>,
): Promise<Measured> {
  const payload = Buffer.alloc(EVENT_SIZE, 0x61);
  const started = performance.now();
  for (let i = 0; i < events; i++) {
    // A full window waits until half of it is delivered, so events leave in bursts (as a
    // publisher fed by a queue would send them) rather than one per delivery.
    if (i - tally.delivered / subs > WINDOW) await tally.reached((i - WINDOW / 2) * subs);
    payload.writeDoubleBE(performance.now(), 0);
    await send(payload);
  }
  const expected = events * subs;
  const deadline = Date.now() + RUN_TIMEOUT_MS;
  let lastCount = -1;
  let stalledSince = Date.now();
  while (tally.delivered < expected && Date.now() < deadline) {
    if (tally.delivered !== lastCount) {
      lastCount = tally.delivered;
      stalledSince = Date.now();
    } else if (Date.now() - stalledSince > 5000) break;
    await new Promise((r) => setTimeout(r, 5));
  }
  const elapsedS = ((tally.lastAt || performance.now()) - started) / 1000;
  tally.latencies.sort((a, b) => a - b);
  return {
    eventsPerS: Math.round(tally.delivered / elapsedS),
    p50: round(percentile(tally.latencies, 50)),
    p99: round(percentile(tally.latencies, 99)),
    delivered: tally.delivered,
    expected,
  };
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

async function runPilot(cluster: Cluster, da: Driver, subs: number): Promise<Measured & { dropped: number }> {
  const [a, b] = cluster.daemons as [
    NonNullable<(typeof cluster.daemons)[0]>,
    NonNullable<(typeof cluster.daemons)[1]>,
  ];
  const drivers = await Promise.all(
    Array.from({ length: Math.ceil(subs / SUBS_PER_DRIVER) }, () => Driver.connect(b.socket)),
  );
  const tally = new Tally();
  const subscriptions: Subscription[] = [];
  for (let i = 0; i < subs; i++) {
    const d = drivers[Math.floor(i / SUBS_PER_DRIVER)] as Driver;
    subscriptions.push(await subscribe(d, a.address, 'bench', { maxBuffered: 1 << 16 }));
  }
  await until(
    `${subs} subscribers`,
    async () => (Number((await brokerStats(a.socket)).subscribers) >= subs ? true : undefined),
    30_000,
  );
  const readers = subscriptions.map(async (s) => {
    for await (const e of s) tally.record(e.data);
  });
  const droppedBefore = Number((await brokerStats(a.socket)).dropped);
  const pub = await openPublisher(da, a.address);
  // The publisher's own first frame subscribes it to its topic; events never come back to it.
  const m = await drive(eventsFor(subs), subs, tally, (p) => pub.publish('bench', p));
  const dropped = Number((await brokerStats(a.socket)).dropped) - droppedBefore;
  await pub.close();
  for (const s of subscriptions) s.close();
  await Promise.allSettled(readers);
  await Promise.all(drivers.map((d) => d.close()));
  await until(
    'subscribers gone',
    async () => (Number((await brokerStats(a.socket)).subscribers) === 0 ? true : undefined),
    30_000,
  );
  return { ...m, dropped };
}

function hasNats(): boolean {
  return spawnSync('nats-server', ['--version'], { stdio: 'ignore' }).status === 0;
}

async function startNats(): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn('nats-server', ['-a', '127.0.0.1', '-p', '-1', '-DV=false'], {
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
    child.once('exit', (code) => reject(new Error(`nats-server exited (${code}): ${text}`)));
    setTimeout(() => reject(new Error(`nats-server did not start: ${text}`)), 10_000);
  });
  return { child, port };
}

async function runNats(port: number, subs: number): Promise<Measured> {
  const tally = new Tally();
  const clients = await Promise.all(Array.from({ length: subs }, () => NatsClient.connect(port)));
  for (const c of clients) c.subscribe('bench', (d) => tally.record(d));
  await Promise.all(clients.map((c) => c.flush()));
  const pub = await NatsClient.connect(port);
  const m = await drive(eventsFor(subs), subs, tally, async (p) => {
    if (!pub.publish('bench', p)) await pub.drained();
  });
  pub.close();
  for (const c of clients) c.close();
  return m;
}

async function main(): Promise<void> {
  const cluster = await Cluster.start();
  const results: Record<string, number | null>[] = [];
  let nats: { child: ChildProcess; port: number } | undefined;
  try {
    const [a, b] = await Promise.all([cluster.addDaemon('a'), cluster.addDaemon('b')]);
    const [da, db] = await Promise.all([Driver.connect(a.socket), Driver.connect(b.socket)]);
    await makeTrust(db, da, b, a);
    nats = process.env.BENCH_NATS !== '0' && hasNats() ? await startNats() : undefined;
    if (!nats) console.log('# nats-server not on PATH: NATS figures are null');
    for (const subs of SUBSCRIBERS) {
      const p = await runPilot(cluster, da, subs);
      console.log(
        `pilot  subscribers=${subs} events=${eventsFor(subs)} delivered=${p.delivered}/${p.expected} dropped=${p.dropped} events_per_s=${p.eventsPerS} p50_ms=${p.p50} p99_ms=${p.p99}`,
      );
      let n: Measured | undefined;
      if (nats) {
        n = await runNats(nats.port, subs);
        console.log(
          `nats   subscribers=${subs} events=${eventsFor(subs)} delivered=${n.delivered}/${n.expected} events_per_s=${n.eventsPerS} p50_ms=${n.p50} p99_ms=${n.p99}`,
        );
      }
      results.push({
        subscribers: subs,
        events_per_s: p.eventsPerS,
        p50_ms: p.p50,
        p99_ms: p.p99,
        dropped: p.dropped,
        nats_events_per_s: n ? n.eventsPerS : null,
        nats_p50_ms: n ? n.p50 : null,
        nats_p99_ms: n ? n.p99 : null,
        ratio: n ? round(p.eventsPerS / n.eventsPerS) : null,
      });
    }
    await Promise.all([da.close(), db.close()]);
  } finally {
    if (nats) await stopProcess(nats.child);
    await cluster.stop();
  }
  console.log(JSON.stringify({ results }));
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
