/**
 * Load and limits of registry processes: one on SQLite, and one or two sharing PostgreSQL (a
 * server this benchmark starts from Debian's binaries, durable like SQLite's synchronous=FULL,
 * see test/pg-server.ts). Each registry runs in its own process
 * (bench/registry-server.ts); this process generates N real Ed25519 identities and speaks the
 * registry protocol to it with signed-body requests as daemons send them, from many loopback
 * source addresses (127.x.y.z) so that the per-IP limits see a realistic spread of sources:
 *
 *   1. register N nodes (10 new keys per source address, the registry's per-IP registration burst);
 *   2. hostname, tag and visibility changes, handshake requests, polls and responses on a subset;
 *   3. lookups / resolves / resolve_hostname at a target rate from concurrent connections, alone;
 *   4. the same while every node heartbeats at the daemons' period (30 s), and a new daemon
 *      registers now and then (its first-registration latency);
 *   5. the same with one source address flooding the registry (per-IP limits);
 *   6. memory (RSS after a full GC, above the empty registry's) and a restart with N nodes stored.
 *
 * Heartbeats and lookups come from two worker threads with their own event loops, so that the
 * signing work of one does not delay the latency samples of the other.
 *
 *   BENCH_REGISTRY_NODES=10000,100000   node counts, one run each
 *   BENCH_REGISTRY_STEADY_S=30          seconds of steady load (step 4)
 *   BENCH_REGISTRY_LOOKUP_RATE=1000     lookups per second in steps 3–5
 *   BENCH_REGISTRY_NODES=0              no SQLite run
 *   BENCH_REGISTRY_PG_NODES=10000       node counts of the PostgreSQL runs (0: none)
 *   BENCH_REGISTRY_PG_PROCESSES=1,2     registry processes sharing PostgreSQL, one run each
 *   BENCH_REGISTRY_PG_TOP=1             print the statements that took PostgreSQL's time in registration and steady load
 *   BENCH_REGISTRY_HB_SESSIONS=15000    nodes with a connection of their own (session heartbeats; 0: none)
 *   BENCH_REGISTRY_WARMUP=1000          registrations per process before measuring (nodes of their own; 0: none)
 *
 * A daemon heartbeats on its own connection: signed once (its register binds the connection), then
 * unsigned where the registry offers session heartbeats. The first BENCH_REGISTRY_HB_SESSIONS
 * nodes do that (one connection each, bound at setup); more connections than that do not fit in
 * this machine's 20,000 descriptors per process, so the rest share a few connections and sign
 * every heartbeat, as all nodes do with a registry without the feature.
 *
 * With two processes, every connection of the load goes to one of them in turn (as behind a TCP
 * balancer); memory is that of the first process. On 2 cores the second process adds no CPU.
 *
 * Last line: {"runs":[{"store":"sqlite","processes":1,"nodes":…,…},…]}.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { JsonObject } from '../src/protocol/json.js';
import { FEATURE_SESSION_HEARTBEAT } from '../src/protocol/registry-auth.js';
import { progress, round, runBench } from './lib.js';
import { BodySigner, countError, loopbackIp, RegistryConn, sortedPercentile } from './registry-load.js';
import { type Cost, CostMeter, costPer, fmtCost } from './registry-cost.js';
import { BLOCK, flood, freshRegistrations, registerMsg, restart } from './registry-phases.js';
import { postgresUnavailable, startPostgres } from '../test/pg-server.js';
import { generateKeys, type Keys, LoadThread, RegistryProcess } from './registry-procs.js';
import type { LoadResult, SetupResult, WorkerCommand } from './registry-worker.js';

const envInt = (name: string, fallback: number): number => {
  const v = Number.parseInt(process.env[name] ?? '', 10);
  return Number.isFinite(v) && v > 0 ? v : fallback;
};
const NODE_COUNTS = (process.env.BENCH_REGISTRY_NODES ?? '10000,100000')
  .split(',')
  .map((s) => Number.parseInt(s.trim(), 10))
  .filter((n) => Number.isFinite(n) && n > 0);
const PG_NODE_COUNTS = (process.env.BENCH_REGISTRY_PG_NODES ?? '10000')
  .split(',')
  .map((s) => Number.parseInt(s.trim(), 10))
  .filter((n) => Number.isFinite(n) && n > 0);
const PG_PROCESSES = (process.env.BENCH_REGISTRY_PG_PROCESSES ?? '1,2')
  .split(',')
  .map((s) => Number.parseInt(s.trim(), 10))
  .filter((n) => Number.isFinite(n) && n > 0);
const STEADY_S = envInt('BENCH_REGISTRY_STEADY_S', 30);
/**
 * Registrations of nodes of their own that each process serves before anything is measured, so
 * that V8 has compiled its request paths (a process that just started runs them in its interpreter
 * and baseline tiers at first; with two processes that is paid twice within the measured 10k).
 */
const WARMUP_PER_PROCESS = ((v) => (Number.isSafeInteger(v) && v >= 0 ? v : 1000))(
  Number.parseInt(process.env.BENCH_REGISTRY_WARMUP ?? '', 10),
);
const LOOKUP_RATE = envInt('BENCH_REGISTRY_LOOKUP_RATE', 1000);
/** The daemons' heartbeat period. */
const HEARTBEAT_PERIOD_S = 30;
/** Lookups alone, and with a flooding source, are shorter windows. */
const ALONE_S = 8;
const FLOOD_S = 10;
/** New keys the registry accepts per source address before its per-IP registration limit. */
const REGISTER_BURST = 10;
const REGISTER_CONCURRENCY = 16;
/** Per-IP request limit is 200/s: heartbeat connections carry at most ~100/s each. */
const PER_SOURCE_RATE = 100;
const LOOKUP_CONNS = 16;
const HB_SESSIONS = ((v) => (Number.isSafeInteger(v) && v >= 0 ? v : 15_000))(
  Number.parseInt(process.env.BENCH_REGISTRY_HB_SESSIONS ?? '', 10),
);

/** Where the registries keep their state, and how many processes share it. */
interface Target {
  readonly store: 'sqlite' | 'postgres';
  readonly processes: number;
}

interface Run {
  store: Target['store'];
  processes: number;
  nodes: number;
  register_per_s: number;
  heartbeat_per_s: number;
  lookup_per_s: number;
  p50_ms: number;
  p99_ms: number;
  rss_mb: number;
  bytes_per_node: number;
  restart_s: number;
  /** Nodes heartbeating unsigned on a connection of their own (0: the registry does not offer it). */
  hb_sessions: number;
  /** RSS per node before the session connections were opened (node state alone). */
  bytes_per_node_without_conns: number;
  /** RSS per session connection (socket and connection state in the registry). */
  bytes_per_conn: number;
  keygen_s: number;
  lookup_alone_p99_ms: number;
  flood_p99_ms: number;
  first_register_p50_ms: number;
  changes_per_s: number;
  /** Per registration (CPU of registry and database, statements, WAL syncs; see registry-cost.ts). */
  register_cost: Cost;
  /** Per request of the steady load (heartbeats, lookups, new daemons). */
  steady_cost: Cost;
}

/** Registers slots [from, to) in groups of REGISTER_BURST per source address; node ids by slot. */
async function registerAll(
  ports: readonly number[],
  keys: Keys,
  signer: BodySigner,
  count: number,
  first = 0,
  block: number = BLOCK.register,
): Promise<{ ids: number[]; seconds: number; sessionHeartbeat: boolean }> {
  const ids = new Array<number>(count).fill(0);
  let sessionHeartbeat = false;
  const errors = new Map<string, number>();
  const groups = Math.ceil(count / REGISTER_BURST);
  let nextGroup = 0;
  let done = 0;
  let lastReport = performance.now();
  const t0 = performance.now();
  const lane = async (): Promise<void> => {
    for (let g = nextGroup++; g < groups; g = nextGroup++) {
      const conn = await RegistryConn.open(
        ports[g % ports.length] as number,
        loopbackIp(block + (g >> 16), g & 0xffff),
      );
      try {
        const from = g * REGISTER_BURST;
        const to = Math.min(count, from + REGISTER_BURST);
        const replies = await Promise.all(
          Array.from({ length: to - from }, (_, k) => conn.request(registerMsg(signer, keys, first + from + k))),
        );
        replies.forEach((r, k) => {
          if (!countError(errors, r.msg) && typeof r.msg.node_id === 'number') ids[from + k] = r.msg.node_id;
          const features = r.msg.features;
          if (Array.isArray(features) && features.includes(FEATURE_SESSION_HEARTBEAT)) sessionHeartbeat = true;
        });
        done += to - from;
      } finally {
        conn.close();
      }
      if (performance.now() - lastReport > 10_000) {
        lastReport = performance.now();
        progress(`  registered ${done}/${count} (${Math.round(done / ((lastReport - t0) / 1000))}/s)`);
      }
    }
  };
  await Promise.all(Array.from({ length: REGISTER_CONCURRENCY }, lane));
  const seconds = (performance.now() - t0) / 1000;
  if (errors.size > 0) throw new Error(`registrations refused: ${JSON.stringify(Object.fromEntries(errors))}`);
  return { ids, seconds, sessionHeartbeat };
}

interface Changes {
  readonly publicIds: number[];
  readonly hostnames: string[];
  readonly perSecond: number;
}

/** Hostname, tags and visibility of the last `m` nodes, then handshakes between pairs of them. */
async function changes(
  ports: readonly number[],
  signer: BodySigner,
  ids: readonly number[],
  m: number,
): Promise<Changes> {
  const slots = Array.from({ length: m }, (_, k) => ids.length - m + k);
  const conns = await Promise.all(
    Array.from({ length: 16 }, (_, i) =>
      RegistryConn.open(ports[i % ports.length] as number, loopbackIp(BLOCK.changes, i + 1)),
    ),
  );
  const errors = new Map<string, number>();
  let ops = 0;
  const runAll = async (jobs: (() => JsonObject)[]): Promise<void> => {
    let next = 0;
    await Promise.all(
      conns.map(async (conn) => {
        for (let j = next++; j < jobs.length; j = next++) {
          const reply = await conn.request((jobs[j] as () => JsonObject)());
          countError(errors, reply.msg);
          ops++;
        }
      }),
    );
  };
  const id = (slot: number): number => ids[slot] as number;
  const t0 = performance.now();
  const half = slots.slice(0, Math.floor(m / 2));
  await runAll(
    slots.map((s) => () => signer.sign(s, { type: 'set_hostname', node_id: id(s), hostname: `bench-${id(s)}` })),
  );
  await runAll(
    slots.map((s) => () => signer.sign(s, { type: 'set_tags', node_id: id(s), tags: ['bench', `g${id(s) % 16}`] })),
  );
  await runAll(half.map((s) => () => signer.sign(s, { type: 'set_visibility', node_id: id(s), public: true })));
  // Pairs (a, b) among the other half: a asks, b polls and accepts, a polls the answer.
  const rest = slots.slice(half.length);
  const pairs: [number, number][] = [];
  for (let k = 0; k + 1 < rest.length; k += 2) pairs.push([rest[k] as number, rest[k + 1] as number]);
  await runAll(
    pairs.map(
      ([a, b]) =>
        () =>
          signer.sign(a, { type: 'request_handshake', from_node_id: id(a), to_node_id: id(b), justification: 'bench' }),
    ),
  );
  await runAll(
    pairs.map(
      ([, b]) =>
        () =>
          signer.sign(b, { type: 'poll_handshakes', node_id: id(b) }),
    ),
  );
  await runAll(
    pairs.map(
      ([a, b]) =>
        () =>
          signer.sign(b, { type: 'respond_handshake', node_id: id(b), peer_id: id(a), accept: true }),
    ),
  );
  await runAll(
    pairs.map(
      ([a]) =>
        () =>
          signer.sign(a, { type: 'poll_handshakes', node_id: id(a) }),
    ),
  );
  const seconds = (performance.now() - t0) / 1000;
  for (const c of conns) c.close();
  if (errors.size > 0) progress(`  changes: error replies ${JSON.stringify(Object.fromEntries(errors))}`);
  progress(
    `  ${ops} changes (hostname, tags, visibility, ${pairs.length} handshakes relayed + polls + responses) in ${seconds.toFixed(1)} s: ${Math.round(ops / seconds)}/s`,
  );
  return { publicIds: half.map(id), hostnames: slots.map((s) => `bench-${id(s)}`), perSecond: ops / seconds };
}

const fmtLoad = (r: LoadResult): string =>
  `${r.ok}/${r.sent} ok in ${r.elapsedS.toFixed(1)} s (${Math.round(r.ok / r.elapsedS)}/s), p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms, max ${r.max.toFixed(1)} ms` +
  `${r.skipped > 0 ? `, ${r.skipped} not sent (backlog)` : ''}${Object.keys(r.errors).length > 0 ? `, errors ${JSON.stringify(r.errors)}` : ''}`;

async function runOne(
  n: number,
  target: Target,
  database: { readonly create: () => Promise<string>; readonly pid: number } | undefined,
  onCleanup: (fn: () => Promise<void>) => void,
): Promise<Run> {
  progress(`── ${n} nodes, ${target.store}, ${target.processes} process(es) ──`);
  const fresh = Math.max(10, Math.ceil((STEADY_S * 1000) / 500) + 2);
  const t0 = performance.now();
  const warmup = WARMUP_PER_PROCESS * target.processes;
  const keys = generateKeys(n + fresh + warmup);
  const keygenS = (performance.now() - t0) / 1000;
  progress(
    `generated ${n + fresh + warmup} Ed25519 identities in ${keygenS.toFixed(1)} s (${Math.round((n + fresh + warmup) / keygenS)}/s, kept in memory only)`,
  );

  const dir = mkdtempSync(join(tmpdir(), 'pilot-bench-registry-'));
  const storePath = database === undefined ? join(dir, 'registry.db') : await database.create();
  const others: RegistryProcess[] = [];
  let registry = await RegistryProcess.start(storePath);
  const threads: LoadThread[] = [];
  const meter = await CostMeter.open(
    () => [registry, ...others],
    database === undefined ? undefined : { url: storePath, pid: database.pid },
  );
  let cleaned = false;
  const cleanup = async (): Promise<void> => {
    if (cleaned) return;
    cleaned = true;
    try {
      await Promise.all(threads.map((th) => th.close()));
      await meter.close();
      await Promise.all([registry, ...others].map((r) => r.stop()));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  onCleanup(cleanup);
  progress(
    `registry (pid ${String(registry.child.pid)}) listening after ${registry.readyS.toFixed(2)} s (empty store; ${registry.startS.toFixed(3)} s in RegistryServer.start)`,
  );
  for (let i = 1; i < target.processes; i++) others.push(await RegistryProcess.start(storePath));
  const port = registry.port;
  const ports = [port, ...others.map((r) => r.port)];
  const signer = new BodySigner(keys.privateKeys);

  // Warm up the request paths of every process before taking the baseline: registrations (nodes
  // of their own, not counted) and lookups.
  if (warmup > 0) await registerAll(ports, keys, signer, warmup, n + fresh, BLOCK.warmup);
  for (const [k, p] of ports.entries()) {
    const warm = await RegistryConn.open(p, loopbackIp(BLOCK.probe, 2 + k));
    for (let i = 0; i < 200; i++) await warm.request({ type: 'lookup', node_id: 1 + i });
    warm.close();
  }
  const base = await registry.mem();
  progress(`baseline: rss ${(base.rss / 2 ** 20).toFixed(1)} MB, heap ${(base.heapUsed / 2 ** 20).toFixed(1)} MB`);

  const top = process.env.BENCH_REGISTRY_PG_TOP !== undefined;
  const beforeRegister = await meter.sample();
  const reg = await registerAll(ports, keys, signer, n);
  const registerPerS = n / reg.seconds;
  const registerCost = costPer(beforeRegister, await meter.sample(), n);
  if (top) for (const line of await meter.topStatements(8)) progress(`  statement: ${line}`);
  progress(
    `registered ${n} nodes in ${reg.seconds.toFixed(1)} s: ${Math.round(registerPerS)}/s; ${fmtCost(registerCost)}`,
  );
  const ids = reg.ids;

  const ch = await changes(ports, signer, ids, Math.min(2000, Math.floor(n / 5)));

  const hb = new LoadThread();
  const lk = new LoadThread();
  threads.push(hb, lk);
  const heartbeatRate = n / HEARTBEAT_PERIOD_S;
  const requesterCount = Math.min(n, 1000);
  const sessions = reg.sessionHeartbeat ? Math.min(n, HB_SESSIONS) : 0;
  const withoutConns = await registry.mem();
  const [hbSetup] = await Promise.all([
    hb.call<SetupResult>({
      cmd: 'setup',
      ports,
      keys: keys.privateKeys.slice(0, n),
      ids,
      ipBlock: BLOCK.heartbeat,
      conns: Math.max(4, Math.ceil(heartbeatRate / PER_SOURCE_RATE)),
      sessions,
    }),
    lk.call({
      cmd: 'setup',
      ports,
      keys: keys.privateKeys.slice(n - requesterCount, n),
      ids: ids.slice(n - requesterCount),
      ipBlock: BLOCK.lookup,
      conns: LOOKUP_CONNS,
    }),
  ]);
  const withConns = await registry.mem();
  const bytesPerConn = sessions > 0 ? (withConns.rss - withoutConns.rss) / sessions : 0;
  progress(
    sessions > 0
      ? `${sessions} nodes on connections of their own, bound by a signed heartbeat in ${hbSetup.bindS.toFixed(1)} s, then heartbeating unsigned (session heartbeats); ${n - sessions} share ${Math.max(4, Math.ceil(heartbeatRate / PER_SOURCE_RATE))} connections, signed; ` +
          `registry rss +${Math.round(bytesPerConn)} B per connection`
      : 'the registry does not offer session heartbeats: every heartbeat signed, on shared connections',
  );
  const lookupCmd = (seconds: number): WorkerCommand => ({
    cmd: 'lookups',
    rate: LOOKUP_RATE,
    durationMs: seconds * 1000,
    lookupIds: Int32Array.from(ids),
    resolveTargets: ch.publicIds,
    hostnames: ch.hostnames,
  });

  const alone = await lk.call<LoadResult>(lookupCmd(ALONE_S));
  progress(`lookups alone (${LOOKUP_RATE}/s target; 70% lookup, 15% resolve, 15% resolve_hostname): ${fmtLoad(alone)}`);

  // Every node heartbeats once per period; the first lap starts now.
  progress(
    `steady load for ${STEADY_S} s: heartbeats at ${Math.round(heartbeatRate)}/s + lookups at ${LOOKUP_RATE}/s + a new daemon registering every 500 ms`,
  );
  const beforeSteady = await meter.sample();
  const steadyStatements = top ? await meter.statements() : undefined;
  const [hbRes, lkRes, firstRegs] = await Promise.all([
    hb.call<LoadResult>({ cmd: 'heartbeats', rate: heartbeatRate, durationMs: STEADY_S * 1000 }),
    lk.call<LoadResult>(lookupCmd(STEADY_S)),
    freshRegistrations(ports, keys, signer, n, 500, STEADY_S * 1000),
  ]);
  const steadyCost = costPer(beforeSteady, await meter.sample(), hbRes.ok + lkRes.ok + firstRegs.length);
  progress(`  heartbeats: ${fmtLoad(hbRes)}`);
  progress(`  lookups:    ${fmtLoad(lkRes)}`);
  firstRegs.sort((a, b) => a - b);
  progress(`  ${fmtCost(steadyCost)}`);
  if (steadyStatements !== undefined)
    for (const line of await meter.topStatements(6, steadyStatements)) progress(`  statement: ${line}`);
  progress(
    `  first registrations: ${firstRegs.length}, p50 ${sortedPercentile(firstRegs, 50).toFixed(2)} ms, max ${sortedPercentile(firstRegs, 100).toFixed(2)} ms`,
  );

  const loaded = await registry.mem();
  const bytesPerNode = (loaded.rss - base.rss) / n;
  progress(
    `memory with ${n} nodes: rss ${(loaded.rss / 2 ** 20).toFixed(1)} MB (+${((loaded.rss - base.rss) / 2 ** 20).toFixed(1)} MB, ${Math.round(bytesPerNode)} B/node), ` +
      `heap +${Math.round((loaded.heapUsed - base.heapUsed) / n)} B/node, external +${Math.round((loaded.external - base.external) / n)} B/node`,
  );

  // Heartbeats keep going at the real rate during the flood, so that nodes stay online.
  const [, floodLk, floodRes] = await Promise.all([
    hb.call<LoadResult>({ cmd: 'heartbeats', rate: heartbeatRate, durationMs: FLOOD_S * 1000 }),
    lk.call<LoadResult>(lookupCmd(FLOOD_S)),
    flood(port, ids, FLOOD_S * 1000),
  ]);
  progress(
    `one source flooding (${floodRes.sent} requests, ${floodRes.limited} rate-limited): lookups ${fmtLoad(floodLk)}; ` +
      `p99 ${(floodLk.p99 / lkRes.p99).toFixed(2)}× the steady load's`,
  );

  await Promise.all(threads.splice(0).map((th) => th.close()));
  await registry.stop();
  const re = await restart(storePath, port, ids[0] as number);
  registry = re.registry;
  progress(
    `restart with ${n} nodes stored: answering after ${re.seconds.toFixed(2)} s (process start included; ${re.startS.toFixed(3)} s in RegistryServer.start)`,
  );
  await cleanup();

  return {
    store: target.store,
    processes: target.processes,
    nodes: n,
    register_per_s: round(registerPerS, 1),
    heartbeat_per_s: round(hbRes.ok / hbRes.elapsedS, 1),
    lookup_per_s: round(lkRes.ok / lkRes.elapsedS, 1),
    p50_ms: round(lkRes.p50, 2),
    p99_ms: round(lkRes.p99, 2),
    rss_mb: round(loaded.rss / 2 ** 20, 1),
    bytes_per_node: Math.round(bytesPerNode),
    restart_s: round(re.seconds, 2),
    hb_sessions: sessions,
    bytes_per_node_without_conns: Math.round((withoutConns.rss - base.rss) / n),
    bytes_per_conn: Math.round(bytesPerConn),
    keygen_s: round(keygenS, 1),
    lookup_alone_p99_ms: round(alone.p99, 2),
    flood_p99_ms: round(floodLk.p99, 2),
    first_register_p50_ms: round(sortedPercentile(firstRegs, 50), 2),
    changes_per_s: round(ch.perSecond, 1),
    register_cost: registerCost,
    steady_cost: steadyCost,
  };
}

runBench('bench:registry', 40 * 60_000, async (onCleanup) => {
  if (NODE_COUNTS.length === 0 && PG_NODE_COUNTS.length === 0) throw new Error('no node count to run');
  const runs: Run[] = [];
  for (const n of NODE_COUNTS) runs.push(await runOne(n, { store: 'sqlite', processes: 1 }, undefined, onCleanup));
  if (PG_NODE_COUNTS.length > 0) {
    const reason = postgresUnavailable();
    if (reason !== undefined) progress(`PostgreSQL runs skipped: ${reason}`);
    else {
      const server = await startPostgres({ durable: true, statementStats: true });
      onCleanup(() => server.stop());
      const database = { create: () => server.createDatabase(), pid: server.pid };
      for (const n of PG_NODE_COUNTS)
        for (const processes of PG_PROCESSES)
          runs.push(await runOne(n, { store: 'postgres', processes }, database, onCleanup));
    }
  }
  console.log(JSON.stringify({ runs }));
});
