/**
 * Stream set-up cost between two daemons on loopback, through the SDK: the time from `dial` to the
 * first echoed byte on port 7, and how many such connect → echo → close cycles per second a client
 * completes.
 *
 * A cycle hands its byte over with the dial (`dial(addr, 7, { data })`, the SDK's way to open a
 * stream with a request, as `pilotctl ping` and `send` do): between pilot-ts daemons it rides in
 * the SYN, so the echo comes one tunnel round trip after the dial. `connect_then_write_p50_ms` is
 * the same cycle written as `await dial()` then `write()`: a handshake round trip, then the byte.
 *
 * Prints progress lines, then as the last line:
 *   {"count":…,"connect_p50_ms":…,"connect_p99_ms":…,"connect_then_write_p50_ms":…,"udp_rtt_median_ms":…,
 *    "connect_p50_ratio_to_udp_rtt":…,"workers":…,"conns_per_s":…,"failed":…,"conns_per_s_limits_raised":…,
 *    "conns_per_s_limits_raised_warmup":…,"failed_limits_raised":…,
 *    "cpu_ms_per_conn":{"dialer":…,"answerer":…,"client":…}}
 * The baseline is a plain UDP round trip between two Node processes (a `node:dgram` echo), one
 * after each connect of the latency phase, half-way to the next (see `alternateWithUdp`), from
 * this process. `cpu_ms_per_conn` is the CPU time (all threads) the dialling
 * daemon, the answering daemon and this client used per completed cycle in the throughput phase
 * with raised limits: less sensitive than the rates to other load on the machine.
 *
 * The latency phase paces its connects (BENCH_CONNECT_GAP_MS, default 110 ms) so each one finds
 * the processes idle, as a client that connects now and then does, after BENCH_WARMUP_CONNS
 * (default 3000) back to back, as a long-running daemon has made (see WARMUP_CONNS). The throughput phase runs
 * BENCH_CONNECT_WORKERS (default 8) loops back to back for BENCH_CONNECT_SECONDS (default 5 s);
 * a daemon admits 100 new streams per second from one node (burst 100) and drops SYNs above
 * that (the dial then waits for a retransmission), so that phase runs twice: with the default
 * limits, and on a second pair of daemons started with the admission limits raised (SYN rates and
 * connection counts). That pair first runs BENCH_WARMUP_CONNS cycles through the same workers, as
 * the first pair ran its warm-up: a daemon's first thousands of connections run partly below
 * V8's optimising tier at about half the rate it reaches after them
 * (`conns_per_s_limits_raised_warmup` is the rate over those first cycles).
 *
 *   BENCH_CONNECT_COUNT=N   sequential connects in the latency phase (default 100)
 */
import { performance } from 'node:perf_hooks';
import type { Driver } from '../src/sdk/driver.js';
import {
  BenchError,
  percentile,
  processCpuPreciseMs,
  progress,
  round,
  runBench,
  trustedPair,
  withTimeout,
} from './lib.js';
import { WARMUP_CONNS } from './node-measure.js';
import { alternateWithUdp, UdpEcho } from './udp-echo.js';

const intEnv = (name: string, fallback: number): number =>
  Math.max(1, Number.parseInt(process.env[name] ?? '', 10) || fallback);
const COUNT = intEnv('BENCH_CONNECT_COUNT', 100);
const GAP_MS = intEnv('BENCH_CONNECT_GAP_MS', 110);
const WORKERS = intEnv('BENCH_CONNECT_WORKERS', 8);
const SECONDS = intEnv('BENCH_CONNECT_SECONDS', 5);
const CYCLE_TIMEOUT_MS = 5000;
/** Daemon flags that lift every admission limit far above what the throughput phase can reach. */
const RAISED_LIMITS = [
  '-syn-rate-limit',
  '100000',
  '-syn-rate-per-source',
  '100000',
  '-max-conns-per-port',
  '100000',
  '-max-conns-total',
  '100000',
];

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const BYTE = Buffer.of(0x2a);

/**
 * Dials the echo port with one byte (handed over with the dial, or written after it with
 * `thenWrite`) and waits for its echo; returns ms from the dial to the echo.
 */
async function connectOnce(driver: Driver, address: string, thenWrite = false): Promise<number> {
  const start = performance.now();
  const conn = await driver.dial(
    address,
    7,
    thenWrite ? { timeoutMs: CYCLE_TIMEOUT_MS } : { timeoutMs: CYCLE_TIMEOUT_MS, data: BYTE },
  );
  try {
    await new Promise<void>((resolve, reject) => {
      conn.once('data', () => resolve());
      conn.once('error', reject);
      conn.once('close', () => reject(new BenchError('stream closed before the echo')));
      if (thenWrite) conn.write(BYTE);
    });
    return performance.now() - start;
  } finally {
    conn.destroy();
  }
}

/** WORKERS loops of connect → echo → close for SECONDS; completed cycles per second. */
async function throughput(
  driver: Driver,
  target: string,
  label: string,
): Promise<{ perSecond: number; failed: number; completed: number }> {
  progress(`${label}: ${WORKERS} workers, connect → echo → close back to back for ${SECONDS} s …`);
  let completed = 0;
  let failed = 0;
  const cycles: number[] = [];
  const errors = new Map<string, number>();
  const until = performance.now() + SECONDS * 1000;
  const started = performance.now();
  await withTimeout(
    `throughput phase (${label})`,
    SECONDS * 1000 + CYCLE_TIMEOUT_MS * 4,
    Promise.all(
      Array.from({ length: WORKERS }, async () => {
        while (performance.now() < until) {
          try {
            cycles.push(await connectOnce(driver, target));
            completed++;
          } catch (err) {
            failed++;
            const message = err instanceof Error ? err.message : String(err);
            errors.set(message, (errors.get(message) ?? 0) + 1);
          }
        }
      }),
    ),
  );
  const elapsedS = (performance.now() - started) / 1000;
  const perSecond = round(completed / elapsedS, 1);
  progress(`${label}: ${completed} cycles in ${round(elapsedS, 2)} s: ${perSecond}/s, ${failed} failed`);
  const sorted = cycles.sort((x, y) => x - y);
  // A dropped SYN costs the dialer its retransmission timeout (about 1 s): count those cycles.
  const slow = sorted.filter((ms) => ms >= 900).length;
  progress(
    `  dial → echo per cycle: p50 ${round(percentile(sorted, 50))} ms, p99 ${round(percentile(sorted, 99))} ms, max ${round(sorted.at(-1) ?? Number.NaN)} ms; ${slow} took ≥ 900 ms`,
  );
  for (const [message, n] of errors) progress(`  ${n} × ${message}`);
  if (completed === 0) throw new BenchError(`no connection completed (${label})`);
  return { perSecond, failed, completed };
}

/**
 * WARMUP_CONNS cycles through WORKERS loops on a pair just started, before its throughput is
 * measured, as the latency phase warms its pair (see WARMUP_CONNS); returns their rate.
 */
async function warmUp(driver: Driver, target: string): Promise<number | null> {
  if (WARMUP_CONNS === 0) return null;
  progress(`warm-up: ${WARMUP_CONNS} connect → echo → close cycles through ${WORKERS} workers …`);
  let left = WARMUP_CONNS;
  const started = performance.now();
  await withTimeout(
    'throughput warm-up',
    WARMUP_CONNS * CYCLE_TIMEOUT_MS,
    Promise.all(
      Array.from({ length: WORKERS }, async () => {
        while (left-- > 0) await connectOnce(driver, target);
      }),
    ),
  );
  const perSecond = round(WARMUP_CONNS / ((performance.now() - started) / 1000), 1);
  progress(`warm-up: ${perSecond}/s on the pair's first ${WARMUP_CONNS} cycles`);
  return perSecond;
}

runBench('bench:connect', 5 * 60_000, async (onCleanup) => {
  progress('starting a rendezvous and two daemons on 127.0.0.1 …');
  const pair = await trustedPair();
  onCleanup(pair.close);
  const target = pair.b.address;
  progress(`warm-up: ${WARMUP_CONNS} connects back to back …`);
  for (let i = 0; i < WARMUP_CONNS; i++)
    await withTimeout(`warm-up connect ${i}`, CYCLE_TIMEOUT_MS * 2, connectOnce(pair.da, target));
  await sleep(1000);

  const udp = await UdpEcho.start();
  onCleanup(async () => udp.close());
  await udp.warmUp(WARMUP_CONNS);
  await sleep(1000);

  progress(`${COUNT} connects, at most one per ${GAP_MS} ms, a UDP round trip between them …`);
  const { times, udp: rtts } = await alternateWithUdp(udp, COUNT, GAP_MS, (i) =>
    withTimeout(`connect ${i}`, CYCLE_TIMEOUT_MS * 2, connectOnce(pair.da, target)),
  );
  udp.close();
  const udpMedian = percentile(
    rtts.sort((x, y) => x - y),
    50,
  );
  const sorted = [...times].sort((x, y) => x - y);
  const p50 = percentile(sorted, 50);
  const p99 = percentile(sorted, 99);
  progress(
    `dial with the byte → echo: p50 ${round(p50)} ms, p99 ${round(p99)} ms; UDP round trips between them: median ${round(udpMedian)} ms; ${round(p50 / udpMedian, 2)}×`,
  );
  await sleep(1000);
  let last = 0;
  progress(`${COUNT} connects written as dial, then write …`);
  const thenWrite: number[] = [];
  for (let i = 0; i < COUNT; i++) {
    await sleep(Math.max(0, last + GAP_MS - performance.now()));
    last = performance.now();
    thenWrite.push(await withTimeout(`connect ${i}`, CYCLE_TIMEOUT_MS * 2, connectOnce(pair.da, target, true)));
  }
  const thenWriteP50 = percentile(
    thenWrite.sort((x, y) => x - y),
    50,
  );
  progress(`dial, then write → echo: p50 ${round(thenWriteP50)} ms`);

  // Let the per-source admission budget refill before the throughput phase.
  await sleep(1500);
  const limited = await throughput(pair.da, target, 'default admission limits');

  progress('again with the admission limits raised (SYN rates 100000/s, 100000 connections per port and in all) …');
  const open = await trustedPair(30_000, RAISED_LIMITS);
  onCleanup(open.close);
  const warmUpRate = await warmUp(open.da, open.b.address);
  const cpu = (): (number | undefined)[] => [
    processCpuPreciseMs(open.a.proc.child.pid),
    processCpuPreciseMs(open.b.proc.child.pid),
    processCpuPreciseMs(process.pid),
  ];
  const cpuBefore = cpu();
  const unlimited = await throughput(open.da, open.b.address, 'limits raised');
  const cpuAfter = cpu();
  const perConn = (i: number): number =>
    round(((cpuAfter[i] ?? Number.NaN) - (cpuBefore[i] ?? Number.NaN)) / Math.max(1, unlimited.completed));
  const cpuPerConn = { dialer: perConn(0), answerer: perConn(1), client: perConn(2) };
  progress(
    `CPU per cycle: dialling daemon ${cpuPerConn.dialer} ms, answering daemon ${cpuPerConn.answerer} ms, client ${cpuPerConn.client} ms`,
  );
  await open.close();

  console.log(
    JSON.stringify({
      count: COUNT,
      connect_p50_ms: round(p50),
      connect_p99_ms: round(p99),
      connect_then_write_p50_ms: round(thenWriteP50),
      udp_rtt_median_ms: round(udpMedian),
      connect_p50_ratio_to_udp_rtt: round(p50 / udpMedian, 2),
      workers: WORKERS,
      conns_per_s: limited.perSecond,
      failed: limited.failed,
      conns_per_s_limits_raised: unlimited.perSecond,
      conns_per_s_limits_raised_warmup: warmUpRate,
      failed_limits_raised: unlimited.failed,
      cpu_ms_per_conn: cpuPerConn,
    }),
  );
});
