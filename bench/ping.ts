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
 *   {"results":[{"mode":"daemon","count":100,"median_ms":…,"p99_ms":…,"cli_median_ms":…,"udp_rtt_median_ms":…,
 *                "ratio_to_udp_rtt":…,"cpu_ms_per_ping":{"dialer":…,"answerer":…,"client":…}},
 *               {"mode":"embedded","count":100,"median_ms":…,"p99_ms":…,"udp_rtt_median_ms":…,"ratio_to_udp_rtt":…}],
 *    "udp_rtt_median_ms":…}
 * The baseline is a plain UDP round trip between two Node processes (a `node:dgram` echo), one
 * after each ping, sent by the process that makes the pings (this one for the daemon row, node a's
 * for the embedded row): each row's ratio is its median over the median of its own round trips,
 * and the top-level `udp_rtt_median_ms` is the median of all of them. Measured in blocks, one
 * run's baseline moved ±15 % against the pings measured a minute before it.
 * `cpu_ms_per_ping` is the CPU time (all threads) the dialling daemon, the answering daemon and this
 * client process used over the timed pings, divided by their number: less sensitive to other load
 * on the machine than the times (it includes what the processes do while idle between pings).
 *
 * Pings start at most every BENCH_PING_GAP_MS (default 110 ms), so that each one finds the
 * processes idle as pilotctl's pings (one a second) do; back to back they would be faster. The UDP
 * round trips go half-way between them, as often (see `alternateWithUdp`). Before them,
 * BENCH_WARMUP_CONNS pings (default 3000) run back to back, so that the connection path is
 * optimised by V8 as in a long-running daemon (see WARMUP_CONNS); the UDP baseline gets as many.
 *
 *   BENCH_PINGS=N         number of SDK pings (default 100)
 *   BENCH_PING_GAP_MS=N   minimum time between ping starts (default 110; 0 = back to back)
 *   BENCH_MODES=daemon,embedded   which rows to measure (default both)
 */
import { Cluster } from '../test/e2e/cluster.js';
import { embeddedPair } from './embedded-pair.js';
import { PING_TIMEOUT_MS, pingOnce, WARMUP_CONNS } from './node-measure.js';
import { alternateWithUdp, UdpEcho } from './udp-echo.js';
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
  udp_rtt_median_ms: number;
  ratio_to_udp_rtt: number;
  cpu_ms_per_ping?: { dialer: number; answerer: number; client: number };
}

function median(values: number[]): number {
  return percentile(
    [...values].sort((x, y) => x - y),
    50,
  );
}

function summary(mode: Row['mode'], rtts: number[], udp: number[]): Row {
  const sorted = [...rtts].sort((x, y) => x - y);
  const udpSorted = [...udp].sort((x, y) => x - y);
  const mid = percentile(sorted, 50);
  const p99 = percentile(sorted, 99);
  const udpMedian = percentile(udpSorted, 50);
  progress(
    `${mode}: min ${round(sorted[0] as number)} ms, median ${round(mid)} ms, p99 ${round(p99)} ms, max ${round(sorted.at(-1) as number)} ms; ` +
      `UDP round trips between them: median ${round(udpMedian)} ms, p99 ${round(percentile(udpSorted, 99))} ms; ${round(mid / udpMedian, 2)}×`,
  );
  return {
    mode,
    count: rtts.length,
    median_ms: round(mid),
    p99_ms: round(p99),
    udp_rtt_median_ms: round(udpMedian),
    ratio_to_udp_rtt: round(mid / udpMedian, 2),
  };
}

async function daemonRow(onCleanup: (f: () => Promise<void>) => void, all: number[]): Promise<Row> {
  progress('starting a rendezvous and two daemons on 127.0.0.1 …');
  const pair = await trustedPair();
  onCleanup(pair.close);
  progress(`a = ${pair.a.address}, b = ${pair.b.address}, trusted`);
  const udp = await UdpEcho.start();
  onCleanup(async () => udp.close());

  progress(`warm-up: ${WARMUP_CONNS} pings and as many UDP round trips back to back …`);
  for (let i = 0; i < WARMUP_CONNS; i++) await pingOnce(pair.da, pair.b.address, i);
  await udp.warmUp(WARMUP_CONNS);
  // Let the SYN budget of the warm-up refill completely.
  await sleep(GAP_MS > 0 ? 1000 : 0);

  progress(`${COUNT} pings, one new stream each, at most one per ${GAP_MS} ms, a UDP round trip between them …`);
  const cpu = (): (number | undefined)[] => [
    processCpuPreciseMs(pair.a.proc.child.pid),
    processCpuPreciseMs(pair.b.proc.child.pid),
    processCpuPreciseMs(process.pid),
  ];
  const cpuBefore = cpu();
  const measured = await alternateWithUdp(udp, COUNT, GAP_MS, async (i) => {
    const rtt = await pingOnce(pair.da, pair.b.address, i);
    if ((i + 1) % 25 === 0) progress(`${i + 1} pings, last ${round(rtt)} ms`);
    return rtt;
  });
  const cpuAfter = cpu();
  udp.close();
  all.push(...measured.udp);
  // The UDP round trips cost this process a little CPU too: its figure is an upper bound.
  const perPing = (i: number): number => round(((cpuAfter[i] ?? Number.NaN) - (cpuBefore[i] ?? Number.NaN)) / COUNT);
  const cpuPerPing = { dialer: perPing(0), answerer: perPing(1), client: perPing(2) };
  progress(
    `CPU per ping: dialling daemon ${cpuPerPing.dialer} ms, answering daemon ${cpuPerPing.answerer} ms, client ${cpuPerPing.client} ms`,
  );
  const row = { ...summary('daemon', measured.times, measured.udp), cpu_ms_per_ping: cpuPerPing };

  const data = jsonData(
    'pilotctl ping',
    await runPilotctl(pair.a, ['ping', pair.b.address, '--count', '5', '--json', '--timeout', '30s'], 60_000),
  );
  const results = Array.isArray(data.results) ? (data.results as Record<string, unknown>[]) : [];
  const cliRtts = results.filter((r) => !('error' in r) && typeof r.rtt_ms === 'number').map((r) => r.rtt_ms as number);
  if (cliRtts.length === 0) throw new BenchError(`pilotctl ping: no echo came back: ${JSON.stringify(data)}`);
  progress(`pilotctl ping --count 5: ${cliRtts.map((r) => round(r)).join(', ')} ms`);

  await pair.close();
  return { ...row, cli_median_ms: round(median(cliRtts)) };
}

/** The same pings between two embedded nodes, each in its own process (node a pings node b's echo). */
async function embeddedRow(onCleanup: (f: () => Promise<void>) => void, all: number[]): Promise<Row> {
  progress('starting a rendezvous and two embedded nodes, each in its own process …');
  const cluster = await Cluster.start();
  onCleanup(() => cluster.stop());
  const pair = await embeddedPair(cluster);
  onCleanup(pair.close);
  progress(`a = ${pair.a.address}, b = ${pair.b.address}, trusted`);
  progress(`warm-up: ${WARMUP_CONNS} pings and as many UDP round trips back to back …`);
  progress(`then ${COUNT} pings, one new stream each, at most one per ${GAP_MS} ms, a UDP round trip between them …`);
  const measured = (await pair.a.call(
    { cmd: 'ping', address: pair.b.address, count: COUNT, gapMs: GAP_MS, warmUp: WARMUP_CONNS },
    (WARMUP_CONNS + COUNT) * (GAP_MS + PING_TIMEOUT_MS * 2) + 10_000,
  )) as { times: number[]; udp: number[] };
  all.push(...measured.udp);
  const row = summary('embedded', measured.times, measured.udp);
  await pair.close();
  await cluster.stop();
  return row;
}

runBench('bench:ping', 5 * 60_000, async (onCleanup) => {
  const rows: Row[] = [];
  const udp: number[] = [];
  if (MODES.has('daemon')) rows.push(await daemonRow(onCleanup, udp));
  if (MODES.has('embedded')) rows.push(await embeddedRow(onCleanup, udp));
  console.log(JSON.stringify({ results: rows, udp_rtt_median_ms: round(median(udp)) }));
});
