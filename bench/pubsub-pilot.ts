/**
 * The pilot-ts side of the pub/sub benchmark: the publisher talks to daemon A's broker (port
 * 1002) through daemon A; the subscribers run on daemon B and reach A's broker through the
 * encrypted tunnel between the two daemons. Every event and every subscriber goes through the
 * SDK's event client, as an application would use it.
 */
import { Driver } from '../src/sdk/driver.js';
import { openPublisher, subscribe, type Subscription } from '../src/sdk/events.js';
import type { DaemonHandle } from '../test/e2e/cluster.js';
import { brokerStats } from '../test/e2e/eventstream-helpers.js';
import { poll } from './lib.js';
import { cpuMeter, EVENT_SIZE, paced, stamp, stamped, Tally, type Latency, type Throughput } from './pubsub-tally.js';

const TOPIC = 'bench';
/** Subscriptions sharing one driver (one IPC connection to daemon B). */
const SUBS_PER_DRIVER = 10;

export interface PilotSide {
  readonly a: DaemonHandle;
  readonly b: DaemonHandle;
  /** A driver on daemon A, for the publisher. */
  readonly da: Driver;
}

interface Subscribed {
  readonly readers: Promise<void>[];
  close(): Promise<void>;
}

async function subscribers(side: PilotSide, n: number, tally: Tally): Promise<Subscribed> {
  const drivers = await Promise.all(
    Array.from({ length: Math.ceil(n / SUBS_PER_DRIVER) }, () => Driver.connect(side.b.socket)),
  );
  const subs: Subscription[] = [];
  for (let i = 0; i < n; i++) {
    subs.push(await subscribe(drivers[Math.floor(i / SUBS_PER_DRIVER)] as Driver, side.a.address, TOPIC));
  }
  await poll(`${n} subscribers at the broker`, 30_000, async () =>
    Number((await brokerStats(side.a.socket)).subscribers) >= n ? true : undefined,
  );
  const readers = subs.map(async (s) => {
    for await (const e of s) tally.record(e.data);
  });
  return {
    readers,
    async close() {
      for (const s of subs) s.close();
      await Promise.allSettled(readers);
      await Promise.all(drivers.map((d) => d.close()));
      await poll('subscribers gone', 30_000, async () =>
        Number((await brokerStats(side.a.socket)).subscribers) === 0 ? true : undefined,
      );
    },
  };
}

async function droppedAtBroker(side: PilotSide): Promise<number> {
  return Number((await brokerStats(side.a.socket)).dropped);
}

/** Open loop: publish as fast as the publisher's connection takes events (it waits only while congested). */
export async function pilotThroughput(
  side: PilotSide,
  subs: number,
  events: number,
): Promise<Throughput & { dropped: number }> {
  const tally = new Tally(false, events * subs);
  const s = await subscribers(side, subs, tally);
  const droppedBefore = await droppedAtBroker(side);
  const pub = await openPublisher(side.da, side.a.address);
  const payload = Buffer.alloc(EVENT_SIZE, 0x61);
  const cpu = cpuMeter([side.a.proc.child.pid, side.b.proc.child.pid]);
  const started = performance.now();
  for (let i = 0; i < events; i++) await pub.publish(TOPIC, stamp(payload));
  await tally.settle();
  const result = tally.throughput(started, cpu());
  const dropped = (await droppedAtBroker(side)) - droppedBefore;
  await pub.close();
  await s.close();
  return { ...result, dropped };
}

/** Publish-to-delivery latency at a fixed publish rate. */
export async function pilotLatency(side: PilotSide, subs: number, events: number, rate: number): Promise<Latency> {
  const tally = new Tally(true, events * subs);
  const s = await subscribers(side, subs, tally);
  const pub = await openPublisher(side.da, side.a.address);
  await paced(events, rate, () => pub.publish(TOPIC, stamped()));
  await tally.settle();
  const result = tally.latency();
  await pub.close();
  await s.close();
  return result;
}
