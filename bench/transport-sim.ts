/**
 * Stream throughput in the deterministic simulator: one 8 MiB transfer over a 50 ms RTT,
 * rate-limited path with random loss on both directions, compared with the link rate and
 * with the Mathis et al. model (MSS / RTT × 1.22 / √p). Prints one line per run, a summary
 * per loss rate (medians over seeds), then a single JSON object as the last line.
 *
 *   BENCH_SEEDS=N   seeds per loss rate (default 3)
 */
import { addEndpointNode } from '../src/transport/sim/endpoint-node.js';
import { SimNetwork } from '../src/transport/sim/network.js';
import { transfer } from '../src/transport/sim/transfer.js';

const MiB = 1024 * 1024;
const BYTES = 8 * MiB;
const RTT_MS = 50;
const BANDWIDTH = 4_000_000;
/** Larger than the whole transfer, so a loss-free run never tail-drops. */
const QUEUE_LIMIT = 16 * MiB;
const MSS = 4096;
const LOSSES = [0, 0.01, 0.05];
const SEED_COUNT = Math.max(1, Number.parseInt(process.env.BENCH_SEEDS ?? '3', 10) || 3);

interface Run {
  seed: number;
  durationMs: number;
  goodput: number;
  retransmits: number;
  wallMs: number;
}

function runOnce(loss: number, seed: number): Run {
  const net = new SimNetwork({ seed });
  const a = addEndpointNode(net, 1);
  const b = addEndpointNode(net, 2);
  net.connect(a, b, { latencyMs: RTT_MS / 2, bandwidthBytesPerSec: BANDWIDTH, queueLimitBytes: QUEUE_LIMIT, loss });
  const started = performance.now();
  const r = transfer(net, { from: a, to: b, port: 1000, bytes: BYTES, seed, maxVirtualMs: 60 * 60 * 1000 });
  const wallMs = performance.now() - started;
  if (!r.finished || !r.ok || r.durationMs === undefined) {
    throw new Error(
      `loss=${loss} seed=${seed}: transfer failed (finished=${r.finished} ok=${r.ok} read=${r.acceptor.bytesRead} ` +
        `dialer=${r.dialer.reason ?? 'open'} acceptor=${r.acceptor.reason ?? 'open'})`,
    );
  }
  const goodput = BYTES / (r.durationMs / 1000);
  return { seed, durationMs: r.durationMs, goodput, retransmits: r.dialer.stats?.retransmits ?? 0, wallMs };
}

function median(values: number[]): number {
  const s = [...values].sort((x, y) => x - y);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

function mathisRate(loss: number): number {
  return (MSS / (RTT_MS / 1000)) * (1.22 / Math.sqrt(loss));
}

const round = (x: number, digits = 4): number => Number(x.toFixed(digits));
const mb = (bytesPerSec: number): string => `${(bytesPerSec / 1e6).toFixed(3)} MB/s`;

console.log(
  `transport-sim: ${BYTES} bytes, RTT ${RTT_MS} ms, link ${mb(BANDWIDTH)} each way, queue ${QUEUE_LIMIT} bytes, ` +
    `MSS ${MSS}, ${SEED_COUNT} seed(s) per loss rate, loss on both directions`,
);

const results = [];
for (const loss of LOSSES) {
  const runs: Run[] = [];
  for (let seed = 1; seed <= SEED_COUNT; seed++) {
    const run = runOnce(loss, seed);
    runs.push(run);
    console.log(
      `  loss ${(loss * 100).toFixed(0)}% seed ${seed}: ${(run.durationMs / 1000).toFixed(3)} s virtual, ` +
        `goodput ${mb(run.goodput)} (${(run.goodput / BANDWIDTH).toFixed(3)} of link), ` +
        `${run.retransmits} retransmits, ${run.wallMs.toFixed(0)} ms wall`,
    );
  }
  const goodput = median(runs.map((r) => r.goodput));
  const mathis = loss > 0 ? goodput / mathisRate(loss) : null;
  console.log(
    `loss ${(loss * 100).toFixed(0)}%: median goodput ${mb(goodput)} = ${(goodput / BANDWIDTH).toFixed(3)} of link` +
      (mathis === null ? '' : `, ${mathis.toFixed(2)}× Mathis (${mb(mathisRate(loss))})`) +
      `, median ${median(runs.map((r) => r.retransmits))} retransmits`,
  );
  results.push({
    loss,
    rtt_ms: RTT_MS,
    bytes: BYTES,
    bandwidth_bytes_per_s: BANDWIDTH,
    goodput_fraction: round(goodput / BANDWIDTH),
    mathis_fraction: mathis === null ? null : round(mathis),
    retransmits: median(runs.map((r) => r.retransmits)),
  });
}

console.log(JSON.stringify({ results }));
