/**
 * Pub/sub fan-out, pilot-ts against NATS, each at its best.
 *
 * Throughput rows: one publisher sends 100-byte events to 1, 10 and 100 subscribers in an open
 * loop, each system with its own flow control (pilot-ts: the publisher's stream backpressure;
 * NATS: the official client with a flush every 1,000 messages). The figure is delivered events/s
 * (events × subscribers) from the first publish to the last delivery; no event may be lost. Each
 * row also gives the CPU time all processes on the path spent per delivered event (pilot-ts: both
 * daemons and the benchmark's own process; NATS: nats-server and the benchmark's process), a
 * figure that other load on the machine disturbs less than the rates.
 * pilot-ts runs through two daemons: the publisher and the broker on daemon A, the subscribers
 * on daemon B, reaching A's broker through the encrypted tunnel. Each configuration runs
 * BENCH_REPEAT times, alternating the systems; rows give the median and its ratio to NATS.
 *
 * The `mode: "embedded"` rows run the same loads between two embedded nodes (`createNode()`),
 * each in a process of its own: the publisher and the broker on node p, the subscribers on node s
 * (CPU time: both node processes and the benchmark's own process).
 *
 * Warm-up runs of each system come first and are not counted: BENCH_WARMUP_DELIVERIES events to
 * one subscriber (default 600000: the single-subscriber path costs a third more CPU per event in
 * its first two runs of 300000 than later, while its code is still being optimised), then a short
 * run to 10 subscribers.
 *
 * Latency rows: BENCH_RATE events/s published for BENCH_LATENCY_EVENTS events to
 * BENCH_LATENCY_SUBS subscribers; p50/p99 publish-to-delivery time.
 *
 * nats-server must be on PATH (Debian: `apt-get install nats-server`); without it the NATS rows
 * are left out and the ratios are null. Prints one line per run, then one JSON object last.
 *
 *   BENCH_DELIVERIES=N       deliveries per throughput run (default 1000000; events = N / subscribers:
 *                            runs of 0.3–1 s; with 300000 a run to 100 subscribers was 3,000 events in
 *                            0.15 s, and its set-up and drain weighed on the rate more than the flow did)
 *   BENCH_SUBS=a,b           subscriber counts (default 1,10,100)
 *   BENCH_REPEAT=N           runs per configuration (default 3)
 *   BENCH_WARMUP_DELIVERIES=N   events of the single-subscriber warm-up run (default 600000)
 *   BENCH_RATE=N             publish rate of the latency rows (default 10000)
 *   BENCH_LATENCY_EVENTS=N   events of a latency row (default 20000)
 *   BENCH_LATENCY_SUBS=N     subscribers of a latency row (default 1)
 *   BENCH_NATS=0             skip NATS
 *   BENCH_MODES=daemon,embedded   which pilot-ts rows to measure (default both)
 */
import { progress, runBench, trustedPair } from './lib.js';
import { natsInstalled, natsLatency, natsThroughput, startNats, type NatsServer } from './pubsub-nats.js';
import { embeddedLatency, embeddedThroughput, startEmbeddedSide } from './pubsub-embedded.js';
import { pilotLatency, pilotThroughput, type PilotSide } from './pubsub-pilot.js';
import { median, round, type Latency, type Throughput } from './pubsub-tally.js';

const intEnv = (name: string, fallback: number): number => {
  const v = Number.parseInt(process.env[name] ?? '', 10);
  return Number.isFinite(v) && v > 0 ? v : fallback;
};

const SUBSCRIBERS = (process.env.BENCH_SUBS ?? '1,10,100')
  .split(',')
  .map((n) => Number.parseInt(n, 10))
  .filter((n) => n > 0);
const DELIVERIES = intEnv('BENCH_DELIVERIES', 1_000_000);
const REPEAT = intEnv('BENCH_REPEAT', 3);
const RATE = intEnv('BENCH_RATE', 10_000);
const LATENCY_EVENTS = intEnv('BENCH_LATENCY_EVENTS', 20_000);
const LATENCY_SUBS = intEnv('BENCH_LATENCY_SUBS', 1);

const MODES = new Set((process.env.BENCH_MODES ?? 'daemon,embedded').split(',').map((m) => m.trim()));

const WARMUP_EVENTS = 20_000;
const WARMUP_DELIVERIES = intEnv('BENCH_WARMUP_DELIVERIES', 600_000);

type Row = Record<string, string | number | null>;

/** One way of carrying the events: a pilot-ts mode or NATS. */
interface System {
  readonly name: string;
  readonly mode: string | null;
  throughput(subs: number, events: number): Promise<Throughput & { dropped?: number }>;
  latency(subs: number, events: number, rate: number): Promise<Latency>;
}

const eventsFor = (subs: number): number => Math.max(1000, Math.floor(DELIVERIES / subs));

function line(system: string, subs: number, rep: number, t: Throughput, dropped?: number): void {
  progress(
    `${system.padEnd(8)} subscribers=${subs} run=${rep} delivered=${t.delivered}/${t.expected}` +
      `${dropped === undefined ? '' : ` dropped_at_broker=${dropped}`} seconds=${round(t.seconds)} events_per_s=${t.eventsPerS} cpu_us_per_event=${t.cpuUsPerEvent}`,
  );
}

/** Medians of the runs of one configuration; `lost` is summed over them. */
function summary(system: System, subs: number, runs: readonly Throughput[]): Row {
  return {
    system: system.name,
    ...(system.mode === null ? {} : { mode: system.mode }),
    subscribers: subs,
    events_per_s: median(runs.map((r) => r.eventsPerS)),
    cpu_us_per_event: median(runs.map((r) => r.cpuUsPerEvent)),
    lost: runs.reduce((sum, r) => sum + r.expected - r.delivered, 0),
  };
}

const label = (system: System): string => (system.mode === null ? system.name : `${system.name}/${system.mode}`);

/** Each configuration BENCH_REPEAT times, the systems taking turns; NATS is the last system, if any. */
async function throughputRows(systems: readonly System[], nats: System | undefined): Promise<Row[]> {
  const rows: Row[] = [];
  const all = nats ? [...systems, nats] : systems;
  for (const subs of SUBSCRIBERS) {
    const events = eventsFor(subs);
    const runs = all.map((): Throughput[] => []);
    for (let rep = 1; rep <= REPEAT; rep++) {
      for (const [i, system] of all.entries()) {
        const t = await system.throughput(subs, events);
        line(label(system), subs, rep, t, t.dropped);
        runs[i]?.push(t);
      }
    }
    const natsRow = nats ? summary(nats, subs, runs[all.length - 1] as Throughput[]) : undefined;
    const natsRate = natsRow ? Number(natsRow.events_per_s) : 0;
    for (const [i, system] of systems.entries()) {
      const row = summary(system, subs, runs[i] as Throughput[]);
      rows.push({ ...row, ratio: natsRow ? round(Number(row.events_per_s) / natsRate) : null });
    }
    if (natsRow) rows.push({ ...natsRow, ratio: 1 });
  }
  return rows;
}

function latencyRow(system: System, l: Latency): Row {
  progress(
    `${label(system).padEnd(8)} latency subscribers=${LATENCY_SUBS} rate=${RATE} delivered=${l.delivered}/${l.expected} p50_ms=${l.p50Ms} p99_ms=${l.p99Ms}`,
  );
  return {
    system: system.name,
    ...(system.mode === null ? {} : { mode: system.mode }),
    kind: 'latency',
    subscribers: LATENCY_SUBS,
    rate_per_s: RATE,
    p50_ms: l.p50Ms,
    p99_ms: l.p99Ms,
    lost: l.expected - l.delivered,
  };
}

runBench('bench:pubsub', 30 * 60_000, async (onCleanup) => {
  const systems: System[] = [];
  if (MODES.has('daemon')) {
    const pair = await trustedPair();
    onCleanup(() => pair.close());
    const side: PilotSide = { a: pair.a, b: pair.b, da: pair.da };
    systems.push({
      name: 'pilot-ts',
      mode: 'daemon',
      throughput: (subs, events) => pilotThroughput(side, subs, events),
      latency: (subs, events, rate) => pilotLatency(side, subs, events, rate),
    });
  }
  if (MODES.has('embedded')) {
    progress('starting two embedded nodes, each in its own process …');
    const side = await startEmbeddedSide();
    onCleanup(() => side.close());
    systems.push({
      name: 'pilot-ts',
      mode: 'embedded',
      throughput: (subs, events) => embeddedThroughput(side, subs, events),
      latency: (subs, events, rate) => embeddedLatency(side, subs, events, rate),
    });
  }
  let nats: System | undefined;
  if (process.env.BENCH_NATS === '0') progress('# BENCH_NATS=0: NATS skipped, ratios are null');
  else if (!natsInstalled())
    progress('# nats-server is not on PATH (apt-get install nats-server): NATS skipped, ratios are null');
  else {
    const server: NatsServer = await startNats();
    onCleanup(() => server.stop());
    nats = {
      name: 'nats',
      mode: null,
      throughput: (subs, events) => natsThroughput(server, subs, events),
      latency: (subs, events, rate) => natsLatency(server.port, subs, events, rate),
    };
  }
  // One short run of each system first, left out of the figures: fresh daemons, nodes and clients
  // run their first events unoptimised.
  for (const subs of [1, 10]) {
    const events = subs === 1 ? WARMUP_DELIVERIES : WARMUP_EVENTS;
    for (const system of nats ? [...systems, nats] : systems) await system.throughput(subs, events);
  }
  const rows = await throughputRows(systems, nats);
  for (const system of nats ? [...systems, nats] : systems) {
    rows.push(latencyRow(system, await system.latency(LATENCY_SUBS, LATENCY_EVENTS, RATE)));
  }
  console.log(JSON.stringify({ rows }));
});
