/**
 * Round-trip latency through two daemons on loopback, measured the way `pilotctl ping` measures
 * it: each ping opens a new stream to the echo port 7, writes "ping-<i>" and waits for the echo;
 * the time runs from the dial to the last echoed byte. The 100 pings run in-process through the
 * SDK (no process start per ping); one `pilotctl ping --count 5 --json` run covers the CLI path.
 *
 * The `mode: "embedded"` row makes the same pings between two embedded nodes (`createNode()`), each
 * in a process of its own: no daemon and no IPC hop.
 *
 * Prints progress lines, then as the last line:
 *   {"results":[{"mode":"daemon","count":100,"median_ms":…,"p99_ms":…,"cli_median_ms":…,"ratio_to_udp_rtt":…,
 *                "cpu_ms_per_ping":{"dialer":…,"answerer":…,"client":…}},
 *               {"mode":"embedded","count":100,"median_ms":…,"p99_ms":…,"ratio_to_udp_rtt":…}],
 *    "udp_rtt_median_ms":…}
 * The baseline is a plain UDP round trip between two Node processes measured in the same run.
 * `cpu_ms_per_ping` is the CPU time (all threads) the dialling daemon, the answering daemon and this
 * client process used over the timed pings, divided by their number: less sensitive to other load
 * on the machine than the times (it includes what the processes do while idle between pings).
 *
 * Pings start at most every BENCH_PING_GAP_MS (default 110 ms), so that each one finds the
 * processes idle as pilotctl's pings (one a second) do; back to back they would be faster. Before
 * them, BENCH_WARMUP_CONNS pings (default 3000) run back to back, so that the connection path is
 * optimised by V8 as in a long-running daemon (see WARMUP_CONNS); the UDP baseline gets as many.
 *
 *   BENCH_PINGS=N         number of SDK pings (default 100)
 *   BENCH_PING_GAP_MS=N   minimum time between ping starts (default 110; 0 = back to back)
 *   BENCH_MODES=daemon,embedded   which rows to measure (default both)
 */
import { performance } from 'node:perf_hooks';
import { Cluster } from '../test/e2e/cluster.js';
import { embeddedPair } from './embedded-pair.js';
import { PING_TIMEOUT_MS, pingOnce, WARMUP_CONNS } from './node-measure.js';
import { udpRoundTrips } from './udp-echo.js';
import {
  BenchError,
  jsonData,
  percentile,
  processCpuPreciseMs,
  progress,
  round,
  runBench,
  runPilotctl,
  trustedPair,
  withTimeout,
} from './lib.js';

const COUNT = Math.max(1, Number.parseInt(process.env.BENCH_PINGS ?? '100', 10) || 100);
const GAP_MS = Math.max(0, Number.parseInt(process.env.BENCH_PING_GAP_MS ?? '110', 10) || 0);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const MODES = new Set((process.env.BENCH_MODES ?? 'daemon,embedded').split(',').map((m) => m.trim()));

interface Row {
  mode: 'daemon' | 'embedded';
  count: number;
  median_ms: number;
  p99_ms: number;
  cli_median_ms?: number;
  cpu_ms_per_ping?: { dialer: number; answerer: number; client: number };
}

function summary(mode: Row['mode'], rtts: number[]): Row {
  const sorted = [...rtts].sort((x, y) => x - y);
  const median = percentile(sorted, 50);
  const p99 = percentile(sorted, 99);
  progress(
    `${mode}: min ${round(sorted[0] as number)} ms, median ${round(median)} ms, p99 ${round(p99)} ms, max ${round(sorted.at(-1) as number)} ms`,
  );
  return { mode, count: rtts.length, median_ms: round(median), p99_ms: round(p99) };
}

async function daemonRow(onCleanup: (f: () => Promise<void>) => void): Promise<Row> {
  progress('starting a rendezvous and two daemons on 127.0.0.1 …');
  const pair = await trustedPair();
  onCleanup(pair.close);
  progress(`a = ${pair.a.address}, b = ${pair.b.address}, trusted`);

  progress(`warm-up: ${WARMUP_CONNS} pings back to back …`);
  for (let i = 0; i < WARMUP_CONNS; i++) await pingOnce(pair.da, pair.b.address, i);
  // Let the SYN budget of the warm-up refill completely.
  await sleep(GAP_MS > 0 ? 1000 : 0);

  progress(`${COUNT} pings, one new stream each, at most one per ${GAP_MS} ms …`);
  const rtts: number[] = [];
  let last = 0;
  const cpu = (): (number | undefined)[] => [
    processCpuPreciseMs(pair.a.proc.child.pid),
    processCpuPreciseMs(pair.b.proc.child.pid),
    processCpuPreciseMs(process.pid),
  ];
  const cpuBefore = cpu();
  for (let i = 0; i < COUNT; i++) {
    await sleep(Math.max(0, last + GAP_MS - performance.now()));
    last = performance.now();
    rtts.push(await pingOnce(pair.da, pair.b.address, i));
    if ((i + 1) % 25 === 0) progress(`${i + 1} pings, last ${round(rtts[i] as number)} ms`);
  }
  const cpuAfter = cpu();
  const perPing = (i: number): number => round(((cpuAfter[i] ?? Number.NaN) - (cpuBefore[i] ?? Number.NaN)) / COUNT);
  const cpuPerPing = { dialer: perPing(0), answerer: perPing(1), client: perPing(2) };
  progress(
    `CPU per ping: dialling daemon ${cpuPerPing.dialer} ms, answering daemon ${cpuPerPing.answerer} ms, client ${cpuPerPing.client} ms`,
  );
  const row = { ...summary('daemon', rtts), cpu_ms_per_ping: cpuPerPing };

  const data = jsonData(
    'pilotctl ping',
    await runPilotctl(pair.a, ['ping', pair.b.address, '--count', '5', '--json', '--timeout', '30s'], 60_000),
  );
  const results = Array.isArray(data.results) ? (data.results as Record<string, unknown>[]) : [];
  const cliRtts = results.filter((r) => !('error' in r) && typeof r.rtt_ms === 'number').map((r) => r.rtt_ms as number);
  if (cliRtts.length === 0) throw new BenchError(`pilotctl ping: no echo came back: ${JSON.stringify(data)}`);
  const cliSorted = [...cliRtts].sort((x, y) => x - y);
  const cliMedian = percentile(cliSorted, 50);
  progress(`pilotctl ping --count 5: ${cliRtts.map((r) => round(r)).join(', ')} ms`);

  await pair.close();
  return { ...row, cli_median_ms: round(cliMedian) };
}

/** The same pings between two embedded nodes, each in its own process (node a pings node b's echo). */
async function embeddedRow(onCleanup: (f: () => Promise<void>) => void): Promise<Row> {
  progress('starting a rendezvous and two embedded nodes, each in its own process …');
  const cluster = await Cluster.start();
  onCleanup(() => cluster.stop());
  const pair = await embeddedPair(cluster);
  onCleanup(pair.close);
  progress(`a = ${pair.a.address}, b = ${pair.b.address}, trusted`);
  progress(`warm-up: ${WARMUP_CONNS} pings back to back …`);
  await pair.a.call(
    { cmd: 'ping', address: pair.b.address, count: WARMUP_CONNS, gapMs: 0 },
    WARMUP_CONNS * PING_TIMEOUT_MS + 10_000,
  );
  await sleep(GAP_MS > 0 ? 1000 : 0);
  progress(`${COUNT} pings, one new stream each, at most one per ${GAP_MS} ms …`);
  const rtts = (await pair.a.call(
    { cmd: 'ping', address: pair.b.address, count: COUNT, gapMs: GAP_MS },
    COUNT * (GAP_MS + PING_TIMEOUT_MS * 2) + 10_000,
  )) as number[];
  const row = summary('embedded', rtts);
  await pair.close();
  await cluster.stop();
  return row;
}

runBench('bench:ping', 5 * 60_000, async (onCleanup) => {
  const rows: Row[] = [];
  if (MODES.has('daemon')) rows.push(await daemonRow(onCleanup));
  if (MODES.has('embedded')) rows.push(await embeddedRow(onCleanup));

  // A daemon ping is two round trips (dial, then the echo), each through four process hops
  // (SDK → daemon → peer daemon → daemon → SDK); an embedded ping crosses two processes. The
  // baseline is one UDP round trip between two idle Node processes with the same gap.
  progress(`baseline: ${COUNT} UDP round trips between two Node processes, same gap and warm-up …`);
  const udp = (await withTimeout('UDP baseline', 120_000, udpRoundTrips(COUNT, GAP_MS, WARMUP_CONNS))).sort(
    (x, y) => x - y,
  );
  const udpMedian = percentile(udp, 50);
  progress(`UDP baseline: median ${round(udpMedian)} ms, p99 ${round(percentile(udp, 99))} ms`);

  console.log(
    JSON.stringify({
      results: rows.map((r) => ({ ...r, ratio_to_udp_rtt: round(r.median_ms / udpMedian, 2) })),
      udp_rtt_median_ms: round(udpMedian),
    }),
  );
});
