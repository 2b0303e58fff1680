/**
 * The embedded side of the pub/sub benchmark (`mode: "embedded"` rows): two embedded nodes
 * (`createNode()`), each in a process of its own. The publisher runs on node p and publishes to
 * p's own broker (port 1002), as the daemon rows publish to the broker of the publisher's daemon;
 * the subscribers run on node s and reach p's broker through the encrypted tunnel. The parent
 * only sends commands; the two processes share the machine's monotonic clock (`sharedNow`).
 */
import { fileURLToPath } from 'node:url';
import type { EmbeddedNode } from '../src/index.js';
import { isJsonObject, type JsonObject } from '../src/protocol/json.js';
import { openPublisher, type Publisher, subscribe, type Subscription } from '../src/sdk/events.js';
import { Cluster } from '../test/e2e/cluster.js';
import { embeddedPair, type EmbeddedPeer, type ExtraCommand, serveNode } from './embedded-pair.js';
import { BenchError, poll } from './lib.js';
import {
  cpuMeter,
  EVENT_SIZE,
  sharedNow,
  paced,
  stamp,
  Tally,
  throughputOf,
  type Latency,
  type Throughput,
} from './pubsub-tally.js';

const TOPIC = 'bench';
const RUN_TIMEOUT_MS = 10 * 60_000;

// ---- in the node processes ----

/** What one node process holds between commands. */
const state: { tally?: Tally; subs: Subscription[]; readers: Promise<void>[]; pub?: Publisher } = {
  subs: [],
  readers: [],
};

async function brokerStats(node: EmbeddedNode): Promise<JsonObject> {
  const services = (await node.info()).services;
  const es = isJsonObject(services) ? services.eventstream : undefined;
  if (!isJsonObject(es)) throw new BenchError('no eventstream stats in info');
  return es;
}

function command(node: EmbeddedNode, c: ExtraCommand): Promise<unknown> | undefined {
  const address = String(c.address);
  switch (c.cmd) {
    case 'broker':
      return brokerStats(node);
    case 'subscribe':
      return (async () => {
        const tally = new Tally(c.latency === true, Number(c.expected), sharedNow);
        state.tally = tally;
        for (let i = 0; i < Number(c.count); i++) state.subs.push(await subscribe(node, address, TOPIC));
        state.readers = state.subs.map(async (s) => {
          for await (const e of s) tally.record(e.data);
        });
        return true;
      })();
    case 'settle':
      return (async () => {
        const tally = state.tally;
        if (!tally) throw new BenchError('no subscribers');
        await tally.settle();
        return { delivered: tally.delivered, lastAt: tally.lastAt, latency: c.latency ? tally.latency() : null };
      })();
    case 'unsubscribe':
      return (async () => {
        for (const s of state.subs) s.close();
        await Promise.allSettled(state.readers);
        state.subs = [];
        state.readers = [];
        state.tally = undefined;
        return true;
      })();
    case 'publish':
      return (async () => {
        const pub = await openPublisher(node, address);
        state.pub = pub;
        const payload = Buffer.alloc(EVENT_SIZE, 0x61);
        const startedAt = sharedNow();
        const events = Number(c.events);
        if (c.rate !== undefined) {
          // A new buffer per event: the publisher may hold on to what it is given.
          await paced(events, Number(c.rate), () =>
            pub.publish(TOPIC, stamp(Buffer.alloc(EVENT_SIZE, 0x61), sharedNow)),
          );
        } else {
          // As the daemon rows: the stamp is only read by latency runs.
          for (let i = 0; i < events; i++) await pub.publish(TOPIC, stamp(payload));
        }
        return startedAt;
      })();
    case 'unpublish':
      return (async () => {
        await state.pub?.close();
        state.pub = undefined;
        return true;
      })();
    default:
      return undefined;
  }
}

if (process.argv[2] === '--pubsub-child') serveNode(command);

// ---- in the benchmark's process ----

export interface EmbeddedSide {
  /** The publisher's node, which hosts the broker. */
  readonly p: EmbeddedPeer;
  /** The subscribers' node. */
  readonly s: EmbeddedPeer;
  close(): Promise<void>;
}

export async function startEmbeddedSide(): Promise<EmbeddedSide> {
  const cluster = await Cluster.start();
  try {
    const pair = await embeddedPair(cluster, { path: fileURLToPath(import.meta.url), args: ['--pubsub-child'] });
    return {
      p: pair.a,
      s: pair.b,
      async close() {
        await pair.close();
        await cluster.stop();
      },
    };
  } catch (err) {
    await cluster.stop();
    throw err;
  }
}

async function brokerAt(side: EmbeddedSide): Promise<JsonObject> {
  return (await side.p.call({ cmd: 'broker' })) as JsonObject;
}

async function subscribed(side: EmbeddedSide, count: number, expected: number, latency: boolean): Promise<void> {
  await side.s.call({ cmd: 'subscribe', address: side.p.address, count, expected, latency });
  await poll(`${count} subscribers at the broker`, 30_000, async () =>
    Number((await brokerAt(side)).subscribers) >= count ? true : undefined,
  );
}

async function unsubscribed(side: EmbeddedSide): Promise<void> {
  await side.p.call({ cmd: 'unpublish' });
  await side.s.call({ cmd: 'unsubscribe' });
  await poll('subscribers gone', 30_000, async () =>
    Number((await brokerAt(side)).subscribers) === 0 ? true : undefined,
  );
}

interface Settled {
  delivered: number;
  lastAt: number;
  latency: Latency | null;
}

/** Open loop, as the daemon rows: publish as fast as the publisher's connection takes events. */
export async function embeddedThroughput(
  side: EmbeddedSide,
  subs: number,
  events: number,
): Promise<Throughput & { dropped: number }> {
  const expected = events * subs;
  await subscribed(side, subs, expected, false);
  const droppedBefore = Number((await brokerAt(side)).dropped);
  const cpu = cpuMeter([side.p.child.pid, side.s.child.pid]);
  const [startedAt, settled] = await Promise.all([
    side.p.call({ cmd: 'publish', address: side.p.address, events }, RUN_TIMEOUT_MS) as Promise<number>,
    side.s.call({ cmd: 'settle' }, RUN_TIMEOUT_MS) as Promise<Settled>,
  ]);
  const result = throughputOf(settled.delivered, expected, (settled.lastAt - startedAt) / 1000, cpu());
  const dropped = Number((await brokerAt(side)).dropped) - droppedBefore;
  await unsubscribed(side);
  return { ...result, dropped };
}

/** Publish-to-delivery latency at a fixed publish rate (stamped with the clock both processes share). */
export async function embeddedLatency(
  side: EmbeddedSide,
  subs: number,
  events: number,
  rate: number,
): Promise<Latency> {
  await subscribed(side, subs, events * subs, true);
  const [, settled] = await Promise.all([
    side.p.call({ cmd: 'publish', address: side.p.address, events, rate }, RUN_TIMEOUT_MS),
    side.s.call({ cmd: 'settle', latency: true }, RUN_TIMEOUT_MS) as Promise<Settled>,
  ]);
  await unsubscribed(side);
  if (!settled.latency) throw new BenchError('no latency figures');
  return settled.latency;
}
