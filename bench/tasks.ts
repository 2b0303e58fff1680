/**
 * Task round trips between two real daemons on loopback (registry + beacon + 2 daemons, each its
 * own process): submit (a) → accept → execute → send-results (b), one after another, each step a
 * request to the local daemon's task service over IPC. The submitter's polo score is raised with
 * the registry admin token first so the gate never refuses. Last line: one JSON object.
 *
 *   BENCH_TASKS=N   round trips (default 200)
 */
import { Driver } from '../src/sdk/driver.js';
import { Tasks } from '../src/sdk/tasks.js';
import { makeTrust, registry, setScore, startTaskCluster } from '../test/e2e/tasks-cluster.js';

const COUNT = Math.max(1, Number.parseInt(process.env.BENCH_TASKS ?? '200', 10) || 200);
const WARMUP = 5;

const cluster = await startTaskCluster();
try {
  const a = await cluster.addDaemon('a');
  const b = await cluster.addDaemon('b');
  const [da, db] = await Promise.all([Driver.connect(a.socket), Driver.connect(b.socket)]);
  await makeTrust(da, db, a, b);
  await db.setTaskExec(true);
  const reg = registry(cluster);
  await setScore(reg, a.nodeId, 1_000_000_000);
  const ta = new Tasks(da);
  const tb = new Tasks(db);
  const roundTrip = async (i: number): Promise<number> => {
    const t0 = performance.now();
    const s = await ta.submitTask(b.address, `bench task ${i}`);
    if (!s.accepted) throw new Error(`submission refused: ${s.message}`);
    await tb.acceptTask(s.task_id);
    await tb.executeNext();
    await tb.sendResults(s.task_id, { text: `result ${i}` });
    return performance.now() - t0;
  };
  for (let i = 0; i < WARMUP; i++) await roundTrip(-1 - i);
  const samples: number[] = [];
  const started = performance.now();
  for (let i = 0; i < COUNT; i++) samples.push(await roundTrip(i));
  const seconds = (performance.now() - started) / 1000;
  samples.sort((x, y) => x - y);
  const pct = (p: number): number => samples[Math.min(samples.length - 1, Math.floor(p * samples.length))] ?? 0;
  const perSecond = COUNT / seconds;
  console.log(
    `${COUNT} round trips in ${seconds.toFixed(2)} s: ${perSecond.toFixed(1)}/s, p50 ${pct(0.5).toFixed(1)} ms, p99 ${pct(0.99).toFixed(1)} ms`,
  );
  reg.close();
  await Promise.all([da.close(), db.close()]);
  console.log(
    JSON.stringify({
      round_trips_per_s: Number(perSecond.toFixed(1)),
      count: COUNT,
      p50_ms: Number(pct(0.5).toFixed(1)),
      p99_ms: Number(pct(0.99).toFixed(1)),
    }),
  );
} finally {
  await cluster.stop();
}
