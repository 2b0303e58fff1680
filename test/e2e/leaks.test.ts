import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { isJsonObject, type JsonObject, type JsonValue } from '../../src/protocol/json.js';
import { Driver } from '../../src/sdk/driver.js';
import { IpcClient } from '../../src/sdk/ipc-client.js';
import { Tasks } from '../../src/sdk/tasks.js';
import { binCommand, Cluster, type DaemonHandle } from './cluster.js';
import { makeTrust } from './eventstream-helpers.js';

/**
 * Clients that give up in every phase — while dialling, mid-transfer, mid-bench, mid-subscribe, as
 * a task worker — by aborting, by Ctrl-C, by SIGKILL; SDK applications in child processes and
 * pilotctl. Afterwards every daemon must be back where it started:
 *
 * - within LIVE_BOUND_MS of the last client's end, no connection in any state but TIME_WAIT, no
 *   port bound for a client, nothing held for a client (dials, connections, listeners, linger
 *   timers), no dial and no dial timer in the stack (a gone client's connections close with FIN,
 *   and are reset 5 s after it left if they have not finished);
 * - within EMPTY_BOUND_MS, no connection at all (TIME_WAIT lasts 10 s) and the engine's timer
 *   stopped, ref'd timers at their count before, and the heap within HEAP_SLACK of where it was.
 */
const LIVE_BOUND_MS = 10_000;
const EMPTY_BOUND_MS = 20_000;
const HEAP_SLACK = 64 * 1024 * 1024;

const CLIENT = join(dirname(fileURLToPath(import.meta.url)), 'leak-client.ts');
const delay = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Proc {
  readonly name: string;
  readonly child: ChildProcess;
  readonly lines: string[];
  readonly exited: Promise<number | null>;
  waitLine(re: RegExp, timeoutMs?: number): Promise<string>;
}

function start(name: string, args: string[], socket: string, home: string): Proc {
  const child = spawn(process.execPath, args, {
    env: { ...process.env, PILOT_SOCKET: socket, PILOT_HOME: home },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const stderr: string[] = [];
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (l) => lines.push(l));
  createInterface({ input: child.stderr as NodeJS.ReadableStream }).on('line', (l) => {
    lines.push(l);
    stderr.push(l);
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    name,
    child,
    lines,
    exited,
    async waitLine(re, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const hit = lines.find((l) => re.test(l));
        if (hit !== undefined) return hit;
        if (child.exitCode !== null || Date.now() > deadline)
          throw new Error(`${name}: no line matching ${re}; output:\n${lines.join('\n')}`);
        await delay(20);
      }
    },
  };
}

const sdkClient = (d: DaemonHandle, ...args: string[]): Proc =>
  start(`sdk ${args.join(' ')}`, ['--import', 'tsx', CLIENT, ...args], d.socket, d.home);
const pilotctl = (d: DaemonHandle, ...args: string[]): Proc =>
  start(`pilotctl ${args.join(' ')}`, [...binCommand('pilotctl'), ...args], d.socket, d.home);

async function kill(p: Proc, signal: NodeJS.Signals): Promise<void> {
  if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill(signal);
  const timer = setTimeout(() => p.child.kill('SIGKILL'), 5000);
  await p.exited;
  clearTimeout(timer);
}

/** The daemon's InfoOK object as it is on the wire (one IPC client: counted in `ipc.clients`). */
async function info(d: DaemonHandle): Promise<JsonObject> {
  const client = await IpcClient.connect(d.socket, {
    onPush: () => undefined,
    onUnsolicitedError: () => undefined,
    onClose: () => undefined,
  });
  try {
    return await client.request({ cmd: 'Info' }, 'InfoOK', (m) => ('json' in m ? m.json : {}));
  } finally {
    await client.close();
  }
}

const obj = (v: JsonValue | undefined): JsonObject => (isJsonObject(v) ? v : {});

interface Snapshot {
  states: Record<string, number>;
  live: number;
  boundPorts: string;
  ipc: JsonObject;
  dials: number;
  timers: JsonObject;
  activeTimers: number;
  heap: number;
  /** `local_port>remote:port STATE` of each connection, for the failure message. */
  conns: string[];
}

function snapshotOf(i: JsonObject): Snapshot {
  const states = obj(i.conn_states) as Record<string, number>;
  const resources = obj(i.resources);
  return {
    states,
    live: Object.entries(states).reduce((n, [s, c]) => (s === 'TIME_WAIT' ? n : n + c), 0),
    boundPorts: JSON.stringify(resources.bound_ports),
    ipc: obj(i.ipc),
    dials: Number(resources.dials),
    timers: obj(resources.timers),
    activeTimers: Number(resources.active_timers),
    heap: Number(obj(resources.memory).heap_used),
    conns: (Array.isArray(i.conn_list) ? i.conn_list.filter(isJsonObject) : []).map(
      (c) => `${String(c.local_port)}>${String(c.remote_addr)}:${String(c.remote_port)} ${String(c.state)}`,
    ),
  };
}

/** What a client-free daemon holds for clients: nothing (the probe itself is the one client). */
const NO_CLIENT = { clients: 1, conns: 0, listeners: 0, dials: 0, lingering: 0 };

describe('no leaks when clients give up in every phase', { timeout: 180_000 }, () => {
  let cluster: Cluster;
  let alice: DaemonHandle;
  let bob: DaemonHandle;
  let carol: DaemonHandle;
  const baseline = new Map<string, Snapshot>();

  before(async () => {
    cluster = await Cluster.start();
    [alice, bob, carol] = [
      await cluster.addDaemon('alice'),
      await cluster.addDaemon('bob'),
      await cluster.addDaemon('carol'),
    ];
    const [da, db, dc] = await Promise.all([
      Driver.connect(alice.socket),
      Driver.connect(bob.socket),
      Driver.connect(carol.socket),
    ]);
    try {
      await makeTrust(da, db, alice, bob);
      await makeTrust(da, dc, alice, carol);
      // Warm up every path the test uses: tunnels, the echo, the event stream, the task service.
      for (const peer of [bob, carol]) {
        const c = await da.dial(peer.address, 7, { timeoutMs: 10_000 });
        c.end('warm');
        for await (const _ of c) {
          // drain
        }
      }
      await new Tasks(da).tasks();
    } finally {
      await Promise.all([da.close(), db.close(), dc.close()]);
    }
    await delay(300);
    for (const d of [alice, bob, carol]) {
      const s = snapshotOf(await info(d));
      assert.equal(s.live, 0, `${d.name}: only TIME_WAIT after the warm-up`);
      assert.deepEqual(s.ipc, NO_CLIENT);
      baseline.set(d.name, s);
    }
  });

  after(async () => cluster?.stop());

  it('pilotctl connections and info agree: every state counted, `connections` the live ones', async () => {
    // Two requests: a connection may change state between them, so a mismatch is retried.
    for (let attempt = 1; ; attempt++) {
      const [conns, inf] = await Promise.all([ctlJson(alice, 'connections'), ctlJson(alice, 'info')]);
      const list = Array.isArray(conns.connections) ? conns.connections.filter(isJsonObject) : [];
      const byState: Record<string, number> = {};
      for (const c of list) byState[String(c.state)] = (byState[String(c.state)] ?? 0) + 1;
      const states = sorted(obj(inf.conn_states) as Record<string, number>);
      const live = list.filter((c) => ['SYN_SENT', 'SYN_RECV', 'ESTABLISHED'].includes(String(c.state))).length;
      if (attempt < 4 && (JSON.stringify(sorted(byState)) !== JSON.stringify(states) || inf.connections !== live))
        continue;
      assert.deepEqual(sorted(byState), states, 'conn_states counts what `connections` lists');
      assert.equal(conns.total, list.length);
      assert.equal(
        inf.connections,
        live,
        '`connections` counts SYN_SENT, SYN_RECV and ESTABLISHED only, as the reference',
      );
      assert.ok((states.TIME_WAIT ?? 0) > 0, 'the warm-up left connections in TIME_WAIT: listed, and counted by state');
      return;
    }
  });

  it('every daemon returns to its baseline after clients abort, are interrupted or killed in every phase', async () => {
    const procs: Proc[] = [];
    const launch = (p: Proc): Proc => {
      procs.push(p);
      return p;
    };

    // ---- dialling: carol is stopped (her packets wait in her socket), the clients give up ----
    carol.proc.child.kill('SIGSTOP');
    const aborting = [1, 2, 3].map(() => launch(sdkClient(alice, 'dial-abort', carol.address, '7', '600')));
    const hanging = [1, 2].map(() => launch(sdkClient(alice, 'dial-hang', carol.address, '7')));
    const pingTimeout = [1, 2].map(() =>
      launch(pilotctl(alice, 'ping', carol.address, '--count', '1', '--timeout', '1s')),
    );
    const pingInt = launch(pilotctl(alice, 'ping', carol.address, '--count', '1'));
    const pingKill = launch(pilotctl(alice, 'ping', carol.address, '--count', '1'));
    await Promise.all([
      ...aborting.map((p) => p.waitLine(/^aborted$/)),
      ...hanging.map((p) => p.waitLine(/^dialing$/)),
      pingInt.waitLine(/PING/),
      pingKill.waitLine(/PING/),
    ]);
    await delay(300);
    await Promise.all([...hanging.map((p) => kill(p, 'SIGKILL')), kill(pingInt, 'SIGINT'), kill(pingKill, 'SIGKILL')]);
    await Promise.all(pingTimeout.map((p) => p.exited));
    // Every dial was given up on; the clients that aborted are still connected.
    const a1 = snapshotOf(await info(alice));
    assert.equal(a1.dials, 0, 'no dial under way at alice once every client gave up');
    assert.equal(a1.ipc.dials, 0);
    carol.proc.child.kill('SIGCONT'); // carol answers the SYNs she holds
    await delay(1500);
    // Her late answers were reset: nothing open between alice and carol, although the clients
    // that aborted their dials are still connected to alice.
    const toCarol = (await info(alice)).conn_list;
    const open = (Array.isArray(toCarol) ? toCarol.filter(isJsonObject) : []).filter(
      (c) => c.remote_addr === carol.address && c.state !== 'TIME_WAIT',
    );
    assert.deepEqual(open, [], 'no connection to carol left open at alice');
    assert.equal(snapshotOf(await info(carol)).live, 0, 'no connection left open at carol');
    assert.ok(
      aborting.every((p) => p.child.exitCode === null),
      'the clients that aborted their dials are still there',
    );
    await Promise.all(aborting.map((p) => kill(p, 'SIGTERM')));

    // ---- mid-transfer, mid-bench, mid-subscribe, a task worker: all at once ----
    const benchInt = [1, 2].map(() => launch(pilotctl(alice, 'bench', bob.address, '256')));
    const benchKill = launch(pilotctl(alice, 'bench', bob.address, '256'));
    const streams = [
      launch(sdkClient(alice, 'stream', bob.address, '7')),
      launch(sdkClient(alice, 'stream', bob.address, '7')),
      launch(sdkClient(alice, 'stream', bob.address, '1001')),
    ];
    const subs = [
      launch(sdkClient(alice, 'subscribe', bob.address, 'jobs')),
      launch(sdkClient(alice, 'subscribe', bob.address, '*')),
    ];
    const subCtl = [
      launch(pilotctl(alice, 'subscribe', bob.address, 'jobs')),
      launch(pilotctl(alice, 'subscribe', bob.address, 'jobs')),
    ];
    const workers = [launch(sdkClient(alice, 'watch')), launch(sdkClient(bob, 'watch'))];
    await Promise.all([
      ...[...benchInt, benchKill].map((p) => p.waitLine(/BENCH/)),
      ...streams.map((p) => p.waitLine(/^streaming$/)),
      ...subs.map((p) => p.waitLine(/^ready$/)),
      ...workers.map((p) => p.waitLine(/^ready$/)),
    ]);
    await delay(1000); // data in flight everywhere, subscriptions and watches registered
    await Promise.all([
      ...benchInt.map((p) => kill(p, 'SIGINT')),
      kill(benchKill, 'SIGKILL'),
      ...streams.map((p) => kill(p, 'SIGKILL')),
      ...subs.map((p) => kill(p, 'SIGKILL')),
      kill(subCtl[0] as Proc, 'SIGINT'),
      kill(subCtl[1] as Proc, 'SIGKILL'),
      ...workers.map((p) => kill(p, 'SIGKILL')),
    ]);
    for (const p of procs) assert.notEqual(p.child.exitCode ?? p.child.signalCode, null, `${p.name} has ended`);
    const gone = Date.now();

    // ---- back to baseline ----
    const reached = new Map<string, { live?: number; empty?: number }>();
    let last = new Map<string, Snapshot>();
    while (Date.now() - gone < EMPTY_BOUND_MS + 2000) {
      last = new Map(
        await Promise.all([alice, bob, carol].map(async (d) => [d.name, snapshotOf(await info(d))] as const)),
      );
      for (const [name, s] of last) {
        const base = baseline.get(name) as Snapshot;
        const r = reached.get(name) ?? {};
        const released =
          s.live === 0 &&
          s.boundPorts === base.boundPorts &&
          JSON.stringify(s.ipc) === JSON.stringify(NO_CLIENT) &&
          s.dials === 0 &&
          Number(s.timers.dials) === 0;
        if (released) r.live ??= Date.now() - gone;
        else delete r.live;
        if (
          released &&
          Object.keys(s.states).length === 0 &&
          Number(s.timers.engine) === 0 &&
          s.activeTimers <= base.activeTimers
        )
          r.empty ??= Date.now() - gone;
        else delete r.empty;
        reached.set(name, r);
      }
      if ([...reached.values()].every((r) => r.empty !== undefined)) break;
      await delay(250);
    }
    const report = Object.fromEntries(
      [...last].map(([name, s]) => [name, { ...s, reached: reached.get(name), baseline: baseline.get(name) }]),
    );
    for (const d of [alice, bob, carol]) {
      const r = reached.get(d.name) ?? {};
      assert.ok(
        r.live !== undefined && r.live <= LIVE_BOUND_MS,
        `${d.name}: clients' resources not released within ${LIVE_BOUND_MS} ms: ${JSON.stringify(report[d.name])}`,
      );
      assert.ok(
        r.empty !== undefined && r.empty <= EMPTY_BOUND_MS,
        `${d.name}: not back to an empty table within ${EMPTY_BOUND_MS} ms: ${JSON.stringify(report[d.name])}`,
      );
      const s = last.get(d.name) as Snapshot;
      const base = baseline.get(d.name) as Snapshot;
      assert.ok(s.heap <= base.heap + HEAP_SLACK, `${d.name}: heap ${s.heap} vs ${base.heap} before`);
    }
    console.log(
      `leak test: released after ${JSON.stringify(Object.fromEntries([...reached].map(([n, r]) => [n, r])))} ms; heap MiB ${JSON.stringify(Object.fromEntries([...last].map(([n, s]) => [n, [Math.round((baseline.get(n) as Snapshot).heap / 1048576), Math.round(s.heap / 1048576)]])))}`,
    );
  });
});

function sorted(o: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(o).sort(([a], [b]) => a.localeCompare(b)));
}

/** `pilotctl --json …` → the `data` of its success envelope. */
async function ctlJson(d: DaemonHandle, ...args: string[]): Promise<JsonObject> {
  const p = pilotctl(d, '--json', ...args);
  const code = await p.exited;
  const line = p.lines.find((l) => l.startsWith('{"'));
  assert.equal(code, 0, `pilotctl ${args.join(' ')}: ${p.lines.join('\n')}`);
  const env = JSON.parse(line as string) as JsonObject;
  return obj(env.data);
}
