/**
 * Bulk throughput through two daemons on loopback, as `pilotctl bench` measures it (60 KiB writes
 * of bytes i mod 256 to the echo port 7, timed until the whole echo is back), next to a plain
 * node:net TCP echo on 127.0.0.1 moving the same bytes with the same writes. The TCP echo server
 * runs in its own process, as daemon b does for pilot.
 *
 * The daemons are warmed up first (a pilotctl bench of BENCH_WARMUP_MIB: tunnel keys, JIT), as
 * long-running daemons are; each size then runs BENCH_RUNS times (default 3) and the median is reported.
 *
 * The `mode: "embedded"` rows move the same bytes (same 60 KiB writes) between two embedded nodes
 * (`createNode()`), each in a process of its own: no daemon, no IPC hop, no pilotctl.
 *
 * Prints progress lines, then as the last line:
 *   {"results":[{"mode":"daemon","size_mb":10,"pilot_mb_s":…,"tcp_mb_s":…,"ratio":…,"cpu_ms_per_mib":{…}},…,
 *               {"mode":"embedded",…},…]}
 * MB/s counts 10^6 bytes; size_mb is MiB, as pilotctl bench takes it. cpu_ms_per_mib (Linux
 * only; medians over the runs) says where the CPU went: the pilotctl process (including its
 * start-up, about 0.2 s), daemon a (sends and receives the echo) and daemon b (echoes).
 *
 *   BENCH_SIZES=10,50   sizes in MiB (default 10,50)
 *   BENCH_WARMUP_MIB=N  warm-up echo before the measured runs (default 150: with 60 KiB segments the
 *                       hot paths are still being optimised well past 20 MiB, which made the first
 *                       measured runs cost up to twice the CPU of later ones)
 *   BENCH_MODES=daemon,embedded   which rows to measure (default both)
 */
import { spawn } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { Cluster } from '../test/e2e/cluster.js';
import { embeddedPair } from './embedded-pair.js';
import {
  BenchError,
  exitedChildrenCpuMs,
  jsonData,
  processCpuMs,
  progress,
  round,
  runBench,
  runPilotctl,
  trustedPair,
  withTimeout,
} from './lib.js';

const MiB = 1024 * 1024;
const CHUNK = 60 * 1024;
const RUNS = Math.max(1, Number.parseInt(process.env.BENCH_RUNS ?? '3', 10) || 3);
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const SIZES = (process.env.BENCH_SIZES ?? '10,50')
  .split(',')
  .map(Number)
  .filter((n) => n > 0);
const PILOT_TIMEOUT_S = 120;
const WARMUP_MIB = Math.max(1, Number.parseInt(process.env.BENCH_WARMUP_MIB ?? '150', 10) || 150);
const MODES = new Set((process.env.BENCH_MODES ?? 'daemon,embedded').split(',').map((m) => m.trim()));

interface Row {
  mode: 'daemon' | 'embedded';
  size_mb: number;
  pilot_mb_s: number;
  tcp_mb_s: number;
  ratio: number;
  cpu_ms_per_mib: Record<string, number>;
}

type TcpEcho = Awaited<ReturnType<typeof startTcpEcho>>;

function row(
  mode: Row['mode'],
  size: number,
  pilotRuns: number[],
  tcpRuns: number[],
  cpuRuns: Record<string, number[]>,
): Row {
  const pilotMbS = median(pilotRuns);
  const tcpMbS = median(tcpRuns);
  const cpu = Object.fromEntries(
    Object.entries(cpuRuns)
      .filter(([, xs]) => xs.length > 0)
      .map(([k, xs]) => [k, round(median(xs), 1)]),
  );
  return {
    mode,
    size_mb: size,
    pilot_mb_s: round(pilotMbS, 2),
    tcp_mb_s: round(tcpMbS, 2),
    ratio: round(pilotMbS / tcpMbS, 4),
    cpu_ms_per_mib: cpu,
  };
}

/** One TCP echo of `bytes`, recorded in MB/s, as the baseline of the pilot run just before. */
async function tcpRun(tcp: TcpEcho, size: number, bytes: number, runs: number[]): Promise<void> {
  const tcpMs = await withTimeout(`TCP echo of ${size} MiB`, 120_000, tcpEcho(tcp.port, bytes));
  runs.push(bytes / 1e6 / (tcpMs / 1000));
  progress(`tcp   ${size} MiB: ${round(runs.at(-1) as number, 2)} MB/s (${Math.round(tcpMs)} ms)`);
}

const ECHO_SERVER = `
const net = require('node:net');
const server = net.createServer((s) => { s.on('error', () => {}); s.pipe(s); });
server.listen(0, '127.0.0.1', () => process.stdout.write('port ' + server.address().port + '\\n'));
process.on('SIGTERM', () => process.exit(0));
`;

async function startTcpEcho(): Promise<{ port: number; stop: () => Promise<void> }> {
  const child = spawn(process.execPath, ['-e', ECHO_SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const line = await withTimeout(
    'starting the TCP echo server',
    10_000,
    new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout }).once('line', resolve);
      child.once('exit', (code) => reject(new BenchError(`TCP echo server exited (${String(code)})`)));
    }),
  );
  const port = Number(/port (\d+)/.exec(line)?.[1]);
  return {
    port,
    stop: async () => {
      child.kill('SIGTERM');
      await withTimeout('stopping the TCP echo server', 5000, exited).catch(() => child.kill('SIGKILL'));
    },
  };
}

/** Same pattern as pilotctl bench: write 60 KiB chunks (waiting for drain), read the echo to the end. */
async function tcpEcho(port: number, total: number): Promise<number> {
  const chunk = Buffer.alloc(CHUNK);
  for (let i = 0; i < CHUNK; i++) chunk[i] = i & 0xff;
  const sock: Socket = connect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => sock.once('connect', resolve).once('error', reject));
  const start = performance.now();
  try {
    const echoed = new Promise<void>((resolve, reject) => {
      let received = 0;
      sock.on('data', (b: Buffer) => {
        received += b.length;
        if (received >= total) resolve();
      });
      sock.once('error', reject);
      sock.once('close', () =>
        received >= total ? resolve() : reject(new BenchError(`TCP echo closed after ${received} of ${total} bytes`)),
      );
    });
    let sent = 0;
    while (sent < total) {
      const piece = total - sent >= CHUNK ? chunk : chunk.subarray(0, total - sent);
      sent += piece.length;
      if (!sock.write(piece)) await new Promise<void>((r) => sock.once('drain', r));
    }
    await echoed;
    return performance.now() - start;
  } finally {
    sock.destroy();
  }
}

async function daemonRows(onCleanup: (f: () => Promise<void>) => void, tcp: TcpEcho): Promise<Row[]> {
  progress('starting a rendezvous and two daemons on 127.0.0.1 …');
  const pair = await trustedPair();
  onCleanup(pair.close);
  progress(`a = ${pair.a.address}, b = ${pair.b.address}, trusted`);

  // Warm-up: tunnel keys, JIT on both paths.
  jsonData(
    'warm-up pilotctl bench',
    await runPilotctl(pair.a, ['bench', pair.b.address, String(WARMUP_MIB), '--json', '--timeout', '120s'], 150_000),
  );
  await withTimeout('warm-up TCP echo', 60_000, tcpEcho(tcp.port, 20 * MiB));

  const results: Row[] = [];
  for (const size of SIZES) {
    const bytes = Math.round(size * MiB);
    const pilotRuns: number[] = [];
    const tcpRuns: number[] = [];
    const cpuRuns: { pilotctl: number[]; daemon_a: number[]; daemon_b: number[] } = {
      pilotctl: [],
      daemon_a: [],
      daemon_b: [],
    };
    const [pidA, pidB] = [pair.a.proc.child.pid, pair.b.proc.child.pid];
    for (let run = 0; run < RUNS; run++) {
      const cpuBefore = [exitedChildrenCpuMs(), processCpuMs(pidA), processCpuMs(pidB)];
      const started = performance.now();
      const out = await runPilotctl(
        pair.a,
        ['bench', pair.b.address, String(size), '--json', '--timeout', `${PILOT_TIMEOUT_S}s`],
        (PILOT_TIMEOUT_S + 30) * 1000,
      );
      const processMs = performance.now() - started;
      const cpuAfter = [exitedChildrenCpuMs(), processCpuMs(pidA), processCpuMs(pidB)];
      const perMib = (i: number): number | undefined => {
        const [b, a] = [cpuBefore[i], cpuAfter[i]];
        return a === undefined || b === undefined ? undefined : (a - b) / size;
      };
      for (const [i, key] of (['pilotctl', 'daemon_a', 'daemon_b'] as const).entries()) {
        const v = perMib(i);
        if (v !== undefined) cpuRuns[key].push(v);
      }
      const data = jsonData(`pilotctl bench ${size}`, out);
      if (data.recv_bytes !== bytes)
        throw new BenchError(`pilotctl bench ${size}: echoed ${String(data.recv_bytes)} of ${bytes} bytes`);
      // pilotctl reports MiB/s, as the reference does; the TCP figures below are in MB/s.
      const pilotMbS = (Number(data.total_mbps) * 1024 * 1024) / 1e6;
      pilotRuns.push(pilotMbS);
      progress(
        `pilot ${size} MiB: ${round(pilotMbS, 2)} MB/s (send ${String(data.send_duration_ms)} ms, echo complete ${String(data.total_duration_ms)} ms; pilotctl process ${Math.round(processMs)} ms)`,
      );
      await tcpRun(tcp, size, bytes, tcpRuns);
    }
    results.push(row('daemon', size, pilotRuns, tcpRuns, cpuRuns));
  }
  await pair.close();
  return results;
}

/** The same echoes between two embedded nodes, each in its own process (node a sends to node b's echo). */
async function embeddedRows(onCleanup: (f: () => Promise<void>) => void, tcp: TcpEcho): Promise<Row[]> {
  progress('starting a rendezvous and two embedded nodes, each in its own process …');
  const cluster = await Cluster.start();
  onCleanup(() => cluster.stop());
  const pair = await embeddedPair(cluster);
  onCleanup(pair.close);
  progress(`a = ${pair.a.address}, b = ${pair.b.address}, trusted`);
  await pair.a.call({ cmd: 'echo', address: pair.b.address, bytes: WARMUP_MIB * MiB }, PILOT_TIMEOUT_S * 1000);

  const results: Row[] = [];
  const [pidA, pidB] = [pair.a.child.pid, pair.b.child.pid];
  for (const size of SIZES) {
    const bytes = Math.round(size * MiB);
    const pilotRuns: number[] = [];
    const tcpRuns: number[] = [];
    const cpuRuns: { node_a: number[]; node_b: number[] } = { node_a: [], node_b: [] };
    for (let run = 0; run < RUNS; run++) {
      const cpuBefore = [processCpuMs(pidA), processCpuMs(pidB)];
      const ms = (await pair.a.call({ cmd: 'echo', address: pair.b.address, bytes }, PILOT_TIMEOUT_S * 1000)) as number;
      const cpuAfter = [processCpuMs(pidA), processCpuMs(pidB)];
      for (const [i, key] of (['node_a', 'node_b'] as const).entries()) {
        const [b, a] = [cpuBefore[i], cpuAfter[i]];
        if (a !== undefined && b !== undefined) cpuRuns[key].push((a - b) / size);
      }
      pilotRuns.push(bytes / 1e6 / (ms / 1000));
      progress(`embedded ${size} MiB: ${round(pilotRuns.at(-1) as number, 2)} MB/s (${Math.round(ms)} ms)`);
      await tcpRun(tcp, size, bytes, tcpRuns);
    }
    results.push(row('embedded', size, pilotRuns, tcpRuns, cpuRuns));
  }
  await pair.close();
  await cluster.stop();
  return results;
}

runBench('bench:echo', 10 * 60_000, async (onCleanup) => {
  const tcp = await startTcpEcho();
  onCleanup(tcp.stop);
  progress(`TCP echo server on 127.0.0.1:${tcp.port}`);
  const results: Row[] = [];
  if (MODES.has('daemon')) results.push(...(await daemonRows(onCleanup, tcp)));
  if (MODES.has('embedded')) {
    await withTimeout('warm-up TCP echo', 60_000, tcpEcho(tcp.port, 20 * MiB));
    results.push(...(await embeddedRows(onCleanup, tcp)));
  }
  console.log(JSON.stringify({ results }));
});
