/**
 * Round-trip latency through two daemons on loopback, measured the way `pilotctl ping` measures
 * it: each ping opens a new stream to the echo port 7, writes "ping-<i>" and waits for the echo;
 * the time runs from the dial to the last echoed byte. The 100 pings run in-process through the
 * SDK (no process start per ping); one `pilotctl ping --count 5 --json` run covers the CLI path.
 *
 * Prints progress lines, then as the last line:
 *   {"count":100,"median_ms":…,"p99_ms":…,"cli_median_ms":…,"udp_rtt_median_ms":…,"ratio_to_udp_rtt":…}
 * The baseline is a plain UDP round trip between two Node processes measured in the same run.
 *
 * Pings start at most every BENCH_PING_GAP_MS (default 110 ms), so that each one finds the
 * processes idle as pilotctl's pings (one a second) do; back to back they would be faster.
 *
 *   BENCH_PINGS=N         number of SDK pings (default 100)
 *   BENCH_PING_GAP_MS=N   minimum time between ping starts (default 110; 0 = back to back)
 */
import { performance } from 'node:perf_hooks';
import type { Driver } from '../src/sdk/driver.js';
import { udpRoundTrips } from './udp-echo.js';
import {
  BenchError,
  jsonData,
  percentile,
  progress,
  round,
  runBench,
  runPilotctl,
  trustedPair,
  withTimeout,
} from './lib.js';

const COUNT = Math.max(1, Number.parseInt(process.env.BENCH_PINGS ?? '100', 10) || 100);
const WARMUP = 10;
const PING_TIMEOUT_MS = 5000;
const GAP_MS = Math.max(0, Number.parseInt(process.env.BENCH_PING_GAP_MS ?? '110', 10) || 0);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function pingOnce(driver: Driver, address: string, seq: number): Promise<number> {
  const payload = Buffer.from(`ping-${seq}`);
  const start = performance.now();
  const conn = await driver.dial(address, 7, { timeoutMs: PING_TIMEOUT_MS, data: payload });
  try {
    await new Promise<void>((resolve, reject) => {
      let got = 0;
      conn.on('data', (b: Buffer) => {
        got += b.length;
        if (got >= payload.length) resolve();
      });
      conn.once('error', reject);
      conn.once('close', () => reject(new BenchError(`ping ${seq}: stream closed after ${got} bytes`)));
    });
    return performance.now() - start;
  } finally {
    conn.destroy();
  }
}

runBench('bench:ping', 5 * 60_000, async (onCleanup) => {
  progress('starting a rendezvous and two daemons on 127.0.0.1 …');
  const pair = await trustedPair();
  onCleanup(pair.close);
  progress(`a = ${pair.a.address}, b = ${pair.b.address}, trusted`);

  for (let i = 0; i < WARMUP; i++) {
    await withTimeout(`warm-up ping ${i}`, PING_TIMEOUT_MS * 2, pingOnce(pair.da, pair.b.address, i));
    await sleep(GAP_MS);
  }
  // Let the SYN budget of the warm-up refill completely.
  await sleep(GAP_MS > 0 ? 1000 : 0);

  progress(`${COUNT} pings, one new stream each, at most one per ${GAP_MS} ms …`);
  const rtts: number[] = [];
  let last = 0;
  for (let i = 0; i < COUNT; i++) {
    await sleep(Math.max(0, last + GAP_MS - performance.now()));
    last = performance.now();
    rtts.push(await withTimeout(`ping ${i}`, PING_TIMEOUT_MS * 2, pingOnce(pair.da, pair.b.address, i)));
    if ((i + 1) % 25 === 0) progress(`${i + 1} pings, last ${round(rtts[i] as number)} ms`);
  }
  const sorted = [...rtts].sort((x, y) => x - y);
  const median = percentile(sorted, 50);
  const p99 = percentile(sorted, 99);
  progress(
    `SDK: min ${round(sorted[0] as number)} ms, median ${round(median)} ms, p99 ${round(p99)} ms, max ${round(sorted.at(-1) as number)} ms`,
  );

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

  // A ping is two round trips (dial, then the echo), each through four process hops
  // (SDK → daemon → peer daemon → daemon → SDK); the baseline is one UDP round trip between two
  // idle Node processes with the same gap, so about four baselines is the floor for this design.
  progress(`baseline: ${COUNT} UDP round trips between two Node processes, same gap …`);
  const udp = (await withTimeout('UDP baseline', 120_000, udpRoundTrips(COUNT, GAP_MS))).sort((x, y) => x - y);
  const udpMedian = percentile(udp, 50);
  progress(`UDP baseline: median ${round(udpMedian)} ms, p99 ${round(percentile(udp, 99))} ms`);

  console.log(
    JSON.stringify({
      count: COUNT,
      median_ms: round(median),
      p99_ms: round(p99),
      cli_median_ms: round(cliMedian),
      udp_rtt_median_ms: round(udpMedian),
      ratio_to_udp_rtt: round(median / udpMedian, 2),
    }),
  );
});
