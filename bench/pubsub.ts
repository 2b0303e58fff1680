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
 * Short warm-up runs of each system (1 and 10 subscribers) come first and are not counted.
 *
 * Latency rows: BENCH_RATE events/s published for BENCH_LATENCY_EVENTS events to
 * BENCH_LATENCY_SUBS subscribers; p50/p99 publish-to-delivery time.
 *
 * nats-server must be on PATH (Debian: `apt-get install nats-server`); without it the NATS rows
 * are left out and the ratios are null. Prints one line per run, then one JSON object last.
 *
 *   BENCH_DELIVERIES=N       deliveries per throughput run (default 300000; events = N / subscribers)
 *   BENCH_SUBS=a,b           subscriber counts (default 1,10,100)
 *   BENCH_REPEAT=N           runs per configuration (default 3)
 *   BENCH_RATE=N             publish rate of the latency rows (default 10000)
 *   BENCH_LATENCY_EVENTS=N   events of a latency row (default 20000)
 *   BENCH_LATENCY_SUBS=N     subscribers of a latency row (default 1)
 *   BENCH_NATS=0             skip NATS
 */
import { progress, runBench, trustedPair } from './lib.js';
import { natsInstalled, natsLatency, natsThroughput, startNats, type NatsServer } from './pubsub-nats.js';
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
const DELIVERIES = intEnv('BENCH_DELIVERIES', 300_000);
const REPEAT = intEnv('BENCH_REPEAT', 3);
const RATE = intEnv('BENCH_RATE', 10_000);
const LATENCY_EVENTS = intEnv('BENCH_LATENCY_EVENTS', 20_000);
const LATENCY_SUBS = intEnv('BENCH_LATENCY_SUBS', 1);

const WARMUP_EVENTS = 20_000;

type Row = Record<string, string | number | null>;

const eventsFor = (subs: number): number => Math.max(1000, Math.floor(DELIVERIES / subs));

function line(system: string, subs: number, rep: number, t: Throughput, dropped?: number): void {
  progress(
    `${system.padEnd(8)} subscribers=${subs} run=${rep} delivered=${t.delivered}/${t.expected}` +
      `${dropped === undefined ? '' : ` dropped_at_broker=${dropped}`} seconds=${round(t.seconds)} events_per_s=${t.eventsPerS} cpu_us_per_event=${t.cpuUsPerEvent}`,
  );
}

/** Medians of the runs of one configuration; `lost` is summed over them. */
function summary(system: string, subs: number, runs: readonly Throughput[]): Row {
  return {
    system,
    subscribers: subs,
    events_per_s: median(runs.map((r) => r.eventsPerS)),
    cpu_us_per_event: median(runs.map((r) => r.cpuUsPerEvent)),
    lost: runs.reduce((sum, r) => sum + r.expected - r.delivered, 0),
  };
}

async function throughputRows(side: PilotSide, nats: NatsServer | undefined): Promise<Row[]> {
  const rows: Row[] = [];
  for (const subs of SUBSCRIBERS) {
    const events = eventsFor(subs);
    const pilot: Throughput[] = [];
    const natsRuns: Throughput[] = [];
    for (let rep = 1; rep <= REPEAT; rep++) {
      const p = await pilotThroughput(side, subs, events);
      line('pilot-ts', subs, rep, p, p.dropped);
      pilot.push(p);
      if (nats) {
        const n = await natsThroughput(nats, subs, events);
        line('nats', subs, rep, n);
        natsRuns.push(n);
      }
    }
    const natsRow = natsRuns.length > 0 ? summary('nats', subs, natsRuns) : undefined;
    const natsRate = natsRow ? Number(natsRow.events_per_s) : 0;
    const pilotRow = summary('pilot-ts', subs, pilot);
    rows.push({ ...pilotRow, ratio: natsRow ? round(Number(pilotRow.events_per_s) / natsRate) : null });
    if (natsRow) rows.push({ ...natsRow, ratio: 1 });
  }
  return rows;
}

function latencyRow(system: string, l: Latency): Row {
  progress(
    `${system.padEnd(8)} latency subscribers=${LATENCY_SUBS} rate=${RATE} delivered=${l.delivered}/${l.expected} p50_ms=${l.p50Ms} p99_ms=${l.p99Ms}`,
  );
  return {
    system,
    kind: 'latency',
    subscribers: LATENCY_SUBS,
    rate_per_s: RATE,
    p50_ms: l.p50Ms,
    p99_ms: l.p99Ms,
    lost: l.expected - l.delivered,
  };
}

runBench('bench:pubsub', 30 * 60_000, async (onCleanup) => {
  const pair = await trustedPair();
  onCleanup(() => pair.close());
  let nats: NatsServer | undefined;
  if (process.env.BENCH_NATS === '0') progress('# BENCH_NATS=0: NATS skipped, ratios are null');
  else if (!natsInstalled())
    progress('# nats-server is not on PATH (apt-get install nats-server): NATS skipped, ratios are null');
  else {
    const started = await startNats();
    nats = started;
    onCleanup(() => started.stop());
  }
  const side: PilotSide = { a: pair.a, b: pair.b, da: pair.da };
  // One short run of each system first, left out of the figures: fresh daemons and clients run
  // their first events unoptimised.
  for (const subs of [1, 10]) {
    await pilotThroughput(side, subs, WARMUP_EVENTS);
    if (nats) await natsThroughput(nats, subs, WARMUP_EVENTS);
  }
  const rows = await throughputRows(side, nats);
  rows.push(latencyRow('pilot-ts', await pilotLatency(side, LATENCY_SUBS, LATENCY_EVENTS, RATE)));
  if (nats) rows.push(latencyRow('nats', await natsLatency(nats.port, LATENCY_SUBS, LATENCY_EVENTS, RATE)));
  console.log(JSON.stringify({ rows }));
});
