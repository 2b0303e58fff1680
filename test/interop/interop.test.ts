import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Driver } from '../../src/sdk/driver.js';
import { okData, type CtlResult } from '../e2e/cli-harness.js';
import {
  arrayOf,
  cli,
  cliData,
  cpuSeconds,
  killStragglers,
  poll,
  udpDrops,
  runExample,
  serveExample,
  startCli,
  startDaemon,
  startRendezvous,
  type Impl,
  type NodeHandle,
  type Proc,
  type Rendezvous,
} from './harness.js';
import { goBinDir, missingGoBinaries } from './go-bin.js';
import { benchMBps, benchTransport, emitSummary, handshakeSeconds, idleSamples, Suite } from './report.js';

/**
 * Interoperability with the Go reference (PROTOCOL.md is the contract, its binaries the check).
 * Run with `npm run test:interop` and PILOT_GO_BIN=<directory of the reference's binaries>.
 *
 * The same checks run twice: on a network whose registry and beacon are the Go `rendezvous`, and
 * on one whose registry and beacon are our `pilot-rendezvous`. Each network has
 *   go-priv   Go daemon, private          ts-priv   pilot-ts daemon, private
 *   go-pub    Go daemon, public           ts-pub    pilot-ts daemon, public
 *   ts-ex     pilot-ts daemon without its own data exchange and event stream services, where the
 *             Go SDK's dataexchange and eventstream servers take ports 1001 and 1002.
 * Trust pairs, one per handshake case: ts-priv→go-priv and go-pub→ts-priv (private targets, so the
 * request is relayed by the registry), ts-pub→go-pub and go-priv→ts-pub (public targets, direct).
 * Data checks run between ts-priv and go-priv. No Go daemon ever dials itself (a Go CLI
 * publishing to its own daemon's broker, say): that alone starts the reference's FIN|ACK storm,
 * which would spoil the timings, so the Go broker gets its events from a pilot-ts node.
 */

const GO_BIN = goBinDir();
const rand = (): string => Math.random().toString(36).slice(2, 8);
const MiB = 1024 * 1024;
const round2 = (n: number): number => Math.round(n * 100) / 100;

function failText(r: CtlResult): string {
  return `exit ${String(r.code ?? r.signal)}; stdout: ${r.stdout.trim().slice(0, 600)}; stderr: ${r.stderr.trim().slice(-600)}`;
}

/** A warning or error in a Go (slog text) or pilot-ts (pino JSON) log line. */
const isWarning = (line: string): boolean => /level=(WARN|ERROR)|"level":(40|50|60)\b/.test(line);
/** Errors the Go registry logs for requests refused by design (resolving a private node before trust). */
const EXPECTED_REGISTRY_ERRORS = /resolve denied|is private/;
/** What a registry or daemon logs when the registry refuses a node's signed request. */
const REFUSED_SIGNATURE = /signature|unauthori[sz]ed|forbidden|replay|not authori[sz]ed|auth(entication)? failed/i;

/** The message and error text of a log line (Go slog text or pino JSON), without paths and other fields. */
function logMessage(line: string): string {
  return logText(line).replace(/\/[^\s"]+/g, '<path>');
}

function logText(line: string): string {
  if (line.startsWith('{')) {
    try {
      const o = JSON.parse(line) as Record<string, unknown>;
      return [o.msg, o.err, o.reason, o.what]
        .filter((x) => x !== undefined)
        .map((x) => (typeof x === 'string' ? x : JSON.stringify(x)))
        .join(' ');
    } catch {
      return line;
    }
  }
  return [...line.matchAll(/\b(msg|err|error)=("(?:[^"\\]|\\.)*"|\S+)/g)].map((m) => m[2]).join(' ');
}

function numbers(list: unknown, key: string, what: string): number[] {
  return arrayOf(list ?? [], what).map((e) => Number(e[key]));
}

// ---------------------------------------------------------------------------------------------

function registrySuite(regImpl: Impl): void {
  const label = regImpl === 'go' ? 'go-registry' : 'ts-registry';
  const title =
    regImpl === 'go'
      ? 'with the Go registry and beacon (rendezvous)'
      : 'with the pilot-ts registry and beacon (pilot-rendezvous)';

  describe(title, () => {
    const s = new Suite(label);
    let dir = '';
    let rv: Rendezvous | undefined;
    const nodes: Partial<Record<'g' | 't' | 'gp' | 'tp' | 'tx', NodeHandle>> = {};
    const servers: Proc[] = [];
    const drivers = new Map<string, Driver>();
    const need = (k: keyof typeof nodes): NodeHandle => {
      const n = nodes[k];
      if (n === undefined) throw new Error(`daemon ${k} did not start`);
      return n;
    };
    const g = (): NodeHandle => need('g');
    const t = (): NodeHandle => need('t');
    const gp = (): NodeHandle => need('gp');
    const tp = (): NodeHandle => need('tp');
    const tx = (): NodeHandle => need('tx');
    /** Logs of the daemons involved, appended to a failure. */
    const logsOf =
      (...ks: (keyof typeof nodes)[]) =>
      (): (Proc | undefined)[] => [...ks.map((k) => nodes[k]?.proc), rv?.proc];

    async function driverFor(node: NodeHandle): Promise<Driver> {
      let d = drivers.get(node.name);
      if (d === undefined) {
        d = await Driver.connect(node.socket);
        drivers.set(node.name, d);
      }
      return d;
    }

    async function pendingIds(node: NodeHandle): Promise<number[]> {
      if (node.impl === 'ts') return (await (await driverFor(node)).pending()).map((p) => p.node_id);
      return numbers((await cliData('go', node, ['pending'])).pending, 'node_id', 'pending');
    }

    async function trustedIds(node: NodeHandle): Promise<number[]> {
      if (node.impl === 'ts') return (await (await driverFor(node)).trusted()).map((p) => p.node_id);
      return numbers((await cliData('go', node, ['trust'])).trusted, 'node_id', 'trusted');
    }

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), `pilot-interop-${label}-`));
      await mkdir(join(dir, 'files'));
      process.stderr.write(`[interop] ${label}: run directory (logs) ${dir}\n`);
    });

    after(async () => {
      for (const d of drivers.values()) await d.close().catch(() => undefined);
      await Promise.all(servers.map((p) => p.stop()));
      await Promise.all(Object.values(nodes).map((n) => n.proc.stop()));
      await rv?.proc.stop();
      await killStragglers();
      if (s.failed === 0 && process.env.PILOT_INTEROP_KEEP !== '1') await rm(dir, { recursive: true, force: true });
      else process.stderr.write(`[interop] ${label}: logs kept in ${dir}\n`);
    });

    // ---- setup: registration --------------------------------------------------------------

    const REG = 'registry and beacon start';
    s.check(REG, { timeoutMs: 20_000 }, async () => {
      rv = await startRendezvous(regImpl, dir);
    });

    const daemonSpecs: {
      key: keyof typeof nodes;
      impl: Impl;
      name: string;
      public?: boolean;
      extra?: string[];
      what: string;
    }[] = [
      { key: 'g', impl: 'go', name: 'go-priv', what: 'Go private daemon' },
      { key: 't', impl: 'ts', name: 'ts-priv', what: 'pilot-ts private daemon' },
      { key: 'gp', impl: 'go', name: 'go-pub', public: true, what: 'Go public daemon' },
      { key: 'tp', impl: 'ts', name: 'ts-pub', public: true, what: 'pilot-ts public daemon' },
      {
        key: 'tx',
        impl: 'ts',
        name: 'ts-ex',
        extra: ['-no-dataexchange', '-no-eventstream'],
        what: 'pilot-ts daemon for the SDK examples',
      },
    ];
    const up: Record<string, string> = {};
    for (const spec of daemonSpecs) {
      up[spec.key] = `register: ${spec.what} (${spec.name}) starts and registers`;
      s.check(up[spec.key] as string, { needs: [REG], timeoutMs: 30_000, logs: () => [rv?.proc] }, async () => {
        if (rv === undefined) throw new Error('no registry');
        const mark = rv.proc.lines.length;
        const node = await startDaemon(spec.impl, dir, rv, spec.name, {
          hostname: `${spec.name}-${label}`,
          ...(spec.public ? { public: true } : {}),
          ...(spec.extra ? { extra: spec.extra } : {}),
        });
        nodes[spec.key] = node;
        assert.ok(node.nodeId > 0, `node id ${node.nodeId}`);
        // Registered, but can it keep its registry session? Two heartbeats, then the logs of both sides.
        await sleep(2500);
        const complaints = [
          ...node.proc.lines.filter(isWarning),
          ...rv.proc.lines.slice(mark).filter((l) => isWarning(l) && !EXPECTED_REGISTRY_ERRORS.test(l)),
        ];
        assert.deepEqual(complaints, [], 'warnings or errors while registering (daemon log, then registry log)');
      });
    }
    const UP_G = up.g as string;
    const UP_T = up.t as string;
    const UP_GP = up.gp as string;
    const UP_TP = up.tp as string;
    const UP_TX = up.tx as string;

    async function checkLookup(viaImpl: Impl, via: NodeHandle, target: NodeHandle): Promise<void> {
      const info =
        target.impl === 'ts' ? await (await driverFor(target)).info() : await cliData('go', target, ['info']);
      const d = await cliData(viaImpl, via, ['lookup', String(target.nodeId)]);
      assert.equal(d.node_id, target.nodeId, 'node_id');
      assert.equal(d.address, target.address, 'address');
      assert.equal(d.public, target.public, 'public');
      assert.equal(d.hostname, target.hostname, 'hostname');
      assert.equal(
        d.public_key,
        (info as Record<string, unknown>).public_key,
        "public_key (the daemon's info vs the registry)",
      );
    }
    s.check('lookup: go cli finds the pilot-ts node in the registry', { needs: [UP_G, UP_T] }, () =>
      checkLookup('go', g(), t()),
    );
    s.check('lookup: ts cli finds the Go node in the registry', { needs: [UP_G, UP_T] }, () =>
      checkLookup('ts', t(), g()),
    );

    async function checkFind(via: NodeHandle, target: NodeHandle): Promise<void> {
      const d = await cliData(via.impl, via, ['find', target.hostname]);
      assert.equal(d.node_id, target.nodeId, `node_id: ${JSON.stringify(d)}`);
      assert.equal(d.address, target.address, 'address');
      assert.equal(d.public, target.public, 'public');
    }
    s.check(
      'find: pilot-ts daemon finds the public Go node by hostname',
      { needs: [UP_T, UP_GP], logs: logsOf('t') },
      () => checkFind(t(), gp()),
    );
    s.check(
      'find: Go daemon finds the public pilot-ts node by hostname',
      { needs: [UP_G, UP_TP], logs: logsOf('g', 'tp') },
      () => checkFind(g(), tp()),
    );

    // ---- trust ----------------------------------------------------------------------------

    async function handshake(req: NodeHandle, target: NodeHandle, key: string, relayed: boolean): Promise<void> {
      const mark = req.proc.lines.length;
      const started = performance.now();
      const sent = await cliData(req.impl, req, [
        'handshake',
        String(target.nodeId),
        `interop ${req.name} to ${target.name}`,
      ]);
      assert.equal(sent.status, 'sent', `handshake reply ${JSON.stringify(sent)}`);
      assert.equal(Number(sent.node_id), target.nodeId);
      await poll(`${target.name} to list ${req.name} (node ${req.nodeId}) as pending`, 25_000, 150, async () =>
        (await pendingIds(target)).includes(req.nodeId) ? true : undefined,
      );
      const pendingS = (performance.now() - started) / 1000;
      const approved = await cliData(target.impl, target, ['approve', String(req.nodeId)]);
      assert.equal(approved.status, 'approved', `approve reply ${JSON.stringify(approved)}`);
      await poll(`${req.name} to trust ${target.name} (approval to arrive)`, 25_000, 150, async () =>
        (await trustedIds(req)).includes(target.nodeId) ? true : undefined,
      );
      const seconds = (performance.now() - started) / 1000;
      handshakeSeconds[`${label} ${key}`] = round2(seconds);
      assert.ok(
        (await trustedIds(target)).includes(req.nodeId),
        `${target.name} does not list ${req.name} as trusted after approving`,
      );
      process.stderr.write(
        `[interop]      ${key}: pending after ${pendingS.toFixed(2)} s, trusted after ${seconds.toFixed(2)} s\n`,
      );
      if (req.impl === 'go') {
        const lines = req.proc.lines.slice(mark);
        const viaRelay = lines.some((l) => l.includes('handshake relayed via registry'));
        if (relayed) assert.ok(viaRelay, `the Go requester did not relay through the registry:\n${lines.join('\n')}`);
        else
          assert.ok(
            !viaRelay,
            `the direct handshake to the public node fell back to the registry relay:\n${lines.filter((l) => /handshake/.test(l)).join('\n')}`,
          );
      }
    }
    const HS_TG = 'handshake ts→go, private target (relayed by the registry): ts-priv → go-priv, go-priv approves';
    const HS_GT = 'handshake go→ts, private target (relayed by the registry): go-pub → ts-priv, ts-priv approves';
    const HS_TGD = 'handshake ts→go, public target (direct): ts-pub → go-pub, go-pub approves';
    const HS_GTD = 'handshake go→ts, public target (direct): go-priv → ts-pub, ts-pub approves';
    s.check(HS_TG, { needs: [UP_T, UP_G], logs: logsOf('t', 'g') }, () => handshake(t(), g(), 'ts→go relayed', true));
    s.check(HS_GT, { needs: [UP_GP, UP_T], logs: logsOf('gp', 't') }, () =>
      handshake(gp(), t(), 'go→ts relayed', true),
    );
    s.check(HS_TGD, { needs: [UP_TP, UP_GP], logs: logsOf('tp', 'gp') }, () =>
      handshake(tp(), gp(), 'ts→go direct', false),
    );
    s.check(HS_GTD, { needs: [UP_G, UP_TP], logs: logsOf('g', 'tp') }, () =>
      handshake(g(), tp(), 'go→ts direct', false),
    );

    s.check(
      'find: pilot-ts daemon finds the trusted private Go node by hostname',
      { needs: [HS_TG], logs: logsOf('t') },
      () => checkFind(t(), g()),
    );
    s.check(
      'find: Go daemon finds the trusted private pilot-ts node by hostname',
      { needs: [HS_TG], logs: logsOf('g') },
      () => checkFind(g(), t()),
    );

    // ---- ping -----------------------------------------------------------------------------

    async function ping(from: NodeHandle, to: NodeHandle): Promise<void> {
      const args = [
        'ping',
        to.address,
        '--count',
        '3',
        ...(from.impl === 'ts' ? ['--interval', '200ms'] : []),
        '--timeout',
        '20s',
      ];
      const d = await cliData(from.impl, from, args, { timeoutMs: 30_000 });
      const results = arrayOf(d.results, 'results');
      assert.equal(results.length, 3, `results: ${JSON.stringify(results)}`);
      for (const r of results)
        assert.ok(
          r.error === undefined && Number(r.bytes) === `ping-${String(r.seq)}`.length,
          `ping result ${JSON.stringify(r)}`,
        );
    }
    const PING_TG = 'ping ts→go (ts-priv → go-priv, 3 echoes on port 7)';
    const PING_GT = 'ping go→ts (go-priv → ts-priv)';
    s.check(PING_TG, { needs: [HS_TG], logs: logsOf('t', 'g') }, () => ping(t(), g()));
    s.check(PING_GT, { needs: [HS_TG], logs: logsOf('g', 't') }, () => ping(g(), t()));
    s.check('ping ts→go over the direct pair (ts-pub → go-pub)', { needs: [HS_TGD], logs: logsOf('tp', 'gp') }, () =>
      ping(tp(), gp()),
    );
    s.check('ping go→ts over the direct pair (go-priv → ts-pub)', { needs: [HS_GTD], logs: logsOf('g', 'tp') }, () =>
      ping(g(), tp()),
    );

    s.check(
      'no packet storm: both daemons near idle 2 s after 80 closed connections (40 each way)',
      { needs: [PING_TG, PING_GT], logs: logsOf('t', 'g') },
      async () => {
        const driver = await driverFor(t());
        for (let i = 0; i < 40; i++) {
          const conn = await driver.dial(g().address, 7, {
            data: Buffer.from(`c${i}`),
            signal: AbortSignal.timeout(5000),
          });
          conn.on('error', () => undefined);
          await Promise.race([
            once(conn, 'data'),
            sleep(5000).then(() => {
              throw new Error(`connection ${i} to go-priv:7 got no echo`);
            }),
          ]);
          conn.end();
          await Promise.race([once(conn, 'close'), sleep(3000)]);
          conn.destroy();
          await sleep(110); // the reference admits 10 new streams per second from one node
        }
        for (let i = 0; i < 40; i++) {
          const r = await cli('go', g(), ['send', t().address, '7', '--data', `c${i}`, '--timeout', '5s'], {
            timeoutMs: 10_000,
          });
          assert.equal(r.code, 0, `go pilotctl send #${i} to ts-priv:7: ${failText(r)}`);
        }
        await sleep(2000);
        const pkts = async (n: NodeHandle): Promise<number> => {
          const i = (n.impl === 'ts'
            ? await (await driverFor(n)).info()
            : await cliData('go', n, ['info'])) as unknown as Record<string, unknown>;
          return Number(i.pkts_sent) + Number(i.pkts_recv);
        };
        const p0 = { t: await pkts(t()), g: await pkts(g()) };
        const c0 = { t: cpuSeconds(t().proc.pid), g: cpuSeconds(g().proc.pid) };
        await sleep(2000);
        const c1 = { t: cpuSeconds(t().proc.pid), g: cpuSeconds(g().proc.pid) };
        const p1 = { t: await pkts(t()), g: await pkts(g()) };
        const sample = {
          window_s: 2,
          ts_cpu_s: round2(c1.t - c0.t),
          go_cpu_s: round2(c1.g - c0.g),
          ts_packets: p1.t - p0.t,
          go_packets: p1.g - p0.g,
        };
        idleSamples[label] = sample;
        process.stderr.write(`[interop]      idle window: ${JSON.stringify(sample)}\n`);
        assert.ok(
          sample.ts_packets < 300 && sample.go_packets < 300,
          `packets in 2 s: ${JSON.stringify(sample)} (a FIN|ACK storm is ~28k)`,
        );
        assert.ok(sample.ts_cpu_s < 0.3 && sample.go_cpu_s < 0.3, `CPU in 2 s: ${JSON.stringify(sample)}`);
      },
    );

    // ---- bench ----------------------------------------------------------------------------

    /** A daemon's connections (its info's conn_list). */
    async function connList(node: NodeHandle): Promise<Record<string, unknown>[]> {
      const info = (node.impl === 'ts'
        ? await (await driverFor(node)).info()
        : await cliData('go', node, ['info'])) as unknown as Record<string, unknown>;
      return arrayOf(info.conn_list ?? [], 'conn_list');
    }

    /**
     * Watches the bench connection on both daemons (every 100 ms; a connection that already
     * existed is not it) for the transport counters: retransmissions and the smallest window the
     * peer advertised, on the sender and on the echo side. A bench over before the first sample
     * leaves null.
     */
    async function watchBench(from: NodeHandle, to: NodeHandle): Promise<() => Promise<Record<string, unknown>>> {
      type Acc = { bytes: number; retransmits: number; fast_retx: number; min_peer_recv_win: number; samples: number };
      const sides = [
        {
          node: from,
          match: (c: Record<string, unknown>) => c.remote_addr === to.address && c.remote_port === 7,
          acc: new Map<number, Acc>(),
          old: new Set<number>(),
        },
        {
          node: to,
          match: (c: Record<string, unknown>) => c.remote_addr === from.address && c.local_port === 7,
          acc: new Map<number, Acc>(),
          old: new Set<number>(),
        },
      ];
      for (const side of sides)
        for (const c of (await connList(side.node).catch(() => [])).filter(side.match)) side.old.add(Number(c.id));
      let running = true;
      const loop = (async () => {
        while (running) {
          for (const side of sides) {
            const list = await connList(side.node).catch(() => [] as Record<string, unknown>[]);
            for (const c of list.filter(side.match)) {
              const id = Number(c.id);
              if (side.old.has(id)) continue;
              const a = side.acc.get(id) ?? {
                bytes: 0,
                retransmits: 0,
                fast_retx: 0,
                min_peer_recv_win: Infinity,
                samples: 0,
              };
              a.bytes = Math.max(a.bytes, Number(c.bytes_sent) || 0);
              a.retransmits = Math.max(a.retransmits, Number(c.retransmits) || 0);
              a.fast_retx = Math.max(a.fast_retx, Number(c.fast_retx) || 0);
              if (typeof c.peer_recv_win === 'number')
                a.min_peer_recv_win = Math.min(a.min_peer_recv_win, c.peer_recv_win);
              a.samples++;
              side.acc.set(id, a);
            }
          }
          await sleep(100);
        }
      })();
      return async () => {
        running = false;
        await loop;
        const pick = (m: Map<number, Acc>): Record<string, number> | null => {
          const best = [...m.values()].sort((x, y) => y.bytes - x.bytes)[0];
          if (best === undefined) return null;
          return { ...best, min_peer_recv_win: Number.isFinite(best.min_peer_recv_win) ? best.min_peer_recv_win : -1 };
        };
        return { sender: pick(sides[0]!.acc), echo: pick(sides[1]!.acc) };
      };
    }

    async function bench(from: NodeHandle, to: NodeHandle, mb: number, key: string): Promise<void> {
      const limit = mb >= 10 ? 50 : 25;
      const stopWatch = await watchBench(from, to);
      const drops0 = [udpDrops(from.udpPort), udpDrops(to.udpPort)];
      let d: Record<string, unknown>;
      try {
        d = await cliData(from.impl, from, ['bench', to.address, String(mb), '--timeout', `${limit}s`], {
          timeoutMs: (limit + 5) * 1000,
        });
      } finally {
        const drops1 = [udpDrops(from.udpPort), udpDrops(to.udpPort)];
        const delta = (i: number): number | null =>
          drops0[i] === undefined || drops1[i] === undefined ? null : (drops1[i] as number) - (drops0[i] as number);
        const counters = {
          ...(await stopWatch()),
          udp_drops: { [`${from.impl} sender`]: delta(0), [`${to.impl} echo`]: delta(1) },
        };
        benchTransport[`${label} ${key}`] = counters;
        process.stderr.write(`[interop]      bench ${key} transport counters: ${JSON.stringify(counters)}\n`);
      }
      const size = mb * MiB;
      const total = Number(d.total_duration_ms);
      if (Number(d.recv_bytes) > 0 && total > 0)
        benchMBps[`${label} ${key}`] = round2(Number(d.recv_bytes) / (total / 1000) / 1e6);
      assert.equal(d.sent_bytes, size, 'sent_bytes');
      assert.equal(d.recv_bytes, size, `recv_bytes (echo incomplete after ${total} ms)`);
      process.stderr.write(`[interop]      bench ${key}: ${round2(size / (total / 1000) / 1e6)} MB/s (${total} ms)\n`);
    }
    const BENCH = (dir: string, mb: number): string => `bench ${dir} ${mb} MiB (echo on port 7)`;
    s.check(BENCH('ts→go', 1), { needs: [PING_TG], logs: logsOf('t', 'g') }, () => bench(t(), g(), 1, 'ts→go 1MiB'));
    s.check(BENCH('ts→go', 10), { needs: [PING_TG], logs: logsOf('t', 'g') }, () => bench(t(), g(), 10, 'ts→go 10MiB'));
    s.check(BENCH('go→ts', 1), { needs: [PING_GT], logs: logsOf('g', 't') }, () => bench(g(), t(), 1, 'go→ts 1MiB'));
    s.check(BENCH('go→ts', 10), { needs: [PING_GT], logs: logsOf('g', 't') }, () => bench(g(), t(), 10, 'go→ts 10MiB'));

    // ---- stdio (port 1000) ----------------------------------------------------------------

    async function stdio(from: NodeHandle, to: NodeHandle): Promise<void> {
      const msg = `stdio ${from.name} to ${to.name} ${rand()}`;
      const recv = startCli(to.impl, to, ['recv', '1000', '--count', '1', '--timeout', '40s'], { timeoutMs: 50_000 });
      await sleep(to.impl === 'ts' ? 1500 : 300);
      const sent = await poll(`connect ${from.name} → ${to.name}:1000`, 20_000, 500, async () => {
        const r = await cli(from.impl, from, ['connect', to.address, '1000', '--message', msg, '--timeout', '10s'], {
          timeoutMs: 15_000,
        });
        if (r.code !== 0) throw new Error(`${from.impl} pilotctl connect: ${failText(r)}`);
        return okData(r);
      });
      assert.equal(sent.sent, msg, 'connect: sent');
      const got = okData(await recv.done);
      const messages = arrayOf(got.messages, 'recv messages');
      assert.equal(messages[0]?.data, msg, `recv: ${JSON.stringify(got)}`);
    }
    s.check(
      'stdio ts→go: ts pilotctl connect --message → go pilotctl recv 1000',
      { needs: [HS_TG], logs: logsOf('t', 'g') },
      () => stdio(t(), g()),
    );
    s.check(
      'stdio go→ts: go pilotctl connect --message → ts pilotctl recv 1000',
      { needs: [HS_TG], logs: logsOf('g', 't') },
      () => stdio(g(), t()),
    );

    // ---- data exchange (port 1001) --------------------------------------------------------

    async function sendMessage(from: NodeHandle, to: NodeHandle, type: 'text' | 'json'): Promise<void> {
      const tag = rand();
      const data = type === 'json' ? JSON.stringify({ interop: from.name, tag }) : `hello from ${from.name} ${tag}`;
      const d = await cliData(from.impl, from, ['send-message', to.address, '--data', data, '--type', type]);
      const T = type.toUpperCase();
      assert.equal(d.ack, `ACK ${T} ${Buffer.byteLength(data)} bytes`, `ack in ${JSON.stringify(d)}`);
      assert.equal(d.bytes, Buffer.byteLength(data));
      const m = await poll(`the message in ${to.name}'s inbox`, 10_000, 300, async () => {
        const inbox = await cliData(to.impl, to, ['inbox']);
        return arrayOf(inbox.messages ?? [], 'inbox messages').find(
          (x) => typeof x.data === 'string' && x.data.includes(tag),
        );
      });
      assert.equal(m.data, data, `inbox data: ${JSON.stringify(m)}`);
      assert.equal(m.type, T, 'inbox type');
      assert.equal(m.from, from.address, 'inbox from');
      assert.equal(m.bytes, Buffer.byteLength(data), 'inbox bytes');
    }
    async function sendFile(from: NodeHandle, to: NodeHandle): Promise<void> {
      const base = `interop-${from.name}-${rand()}`;
      const path = join(dir, 'files', `${base}.txt`);
      const content = `file from ${from.name}\n${'x'.repeat(5000)}\n`;
      await writeFile(path, content);
      const d = await cliData(from.impl, from, ['send-file', to.address, path]);
      assert.equal(d.filename, `${base}.txt`, 'filename');
      assert.equal(d.bytes, content.length, 'bytes');
      assert.equal(d.ack, `ACK FILE ${content.length} bytes`, `ack in ${JSON.stringify(d)}`);
      const f = await poll(`the file in ${to.name}'s received files`, 10_000, 300, async () => {
        const r = await cliData(to.impl, to, ['received']);
        return arrayOf(r.files ?? [], 'received files').find(
          (x) => typeof x.name === 'string' && x.name.startsWith(base),
        );
      });
      assert.equal(await readFile(String(f.path), 'utf8'), content, `content of ${String(f.path)}`);
      assert.equal(f.bytes, content.length);
    }
    const MSG_GT_TEXT = 'send-message text go→ts (inbox of ts-priv)';
    s.check('send-message text ts→go (inbox of go-priv)', { needs: [HS_TG], logs: logsOf('t', 'g') }, () =>
      sendMessage(t(), g(), 'text'),
    );
    s.check('send-message json ts→go', { needs: [HS_TG], logs: logsOf('t', 'g') }, () => sendMessage(t(), g(), 'json'));
    s.check('send-file ts→go (received files of go-priv)', { needs: [HS_TG], logs: logsOf('t', 'g') }, () =>
      sendFile(t(), g()),
    );
    s.check(MSG_GT_TEXT, { needs: [HS_TG], logs: logsOf('g', 't') }, () => sendMessage(g(), t(), 'text'));
    s.check('send-message json go→ts', { needs: [HS_TG], logs: logsOf('g', 't') }, () => sendMessage(g(), t(), 'json'));
    s.check('send-file go→ts (received files of ts-priv)', { needs: [HS_TG], logs: logsOf('g', 't') }, () =>
      sendFile(g(), t()),
    );

    // ---- event stream (port 1002) ---------------------------------------------------------

    /** `subscriber` subscribes on `broker`'s event stream, then `publisherImpl`'s CLI on `publisher` publishes there until the event arrives. */
    async function pubsub(
      broker: NodeHandle,
      subscriber: NodeHandle,
      publisher: NodeHandle,
      subImpl: Impl = subscriber.impl,
      pubImpl: Impl = publisher.impl,
    ): Promise<void> {
      const topic = `interop.${rand()}`;
      const payload = `event from ${publisher.name} ${rand()}`;
      const sub = startCli(
        subImpl,
        subscriber,
        ['subscribe', broker.address, topic, '--count', '1', '--timeout', '35s'],
        { timeoutMs: 45_000 },
      );
      let exited = false;
      void sub.done.then(
        () => (exited = true),
        () => (exited = true),
      );
      await sleep(subImpl === 'ts' ? 1500 : 500);
      const deadline = Date.now() + 25_000;
      let published = 0;
      let lastError = '';
      while (!exited && Date.now() < deadline) {
        const r = await cli(pubImpl, publisher, ['publish', broker.address, topic, '--data', payload], {
          timeoutMs: 15_000,
        });
        if (r.code === 0) published++;
        else lastError = failText(r);
        await Promise.race([sub.done.catch(() => undefined), sleep(1500)]);
      }
      const r = await sub.done;
      assert.equal(
        r.code,
        0,
        `subscriber (${subImpl} pilotctl on ${subscriber.name}): ${failText(r)}; publishes that succeeded: ${published}${lastError ? `; last publish error: ${lastError}` : ''}`,
      );
      const events = arrayOf(okData(r).events, 'events');
      assert.ok(published > 0, `no publish succeeded: ${lastError}`);
      assert.equal(events[0]?.topic, topic, `events: ${JSON.stringify(events)} (publishes: ${published})`);
      assert.equal(events[0]?.data, payload);
    }
    s.check(
      'pubsub on the Go broker: ts-priv subscribes, ts-pub publishes',
      { needs: [HS_TG, HS_GTD], logs: logsOf('g', 't', 'tp') },
      () => pubsub(g(), t(), tp()),
    );
    s.check(
      'pubsub on the pilot-ts broker: go-priv subscribes, ts-priv publishes',
      { needs: [HS_TG], logs: logsOf('t', 'g') },
      () => pubsub(t(), g(), t()),
    );
    s.check(
      'pubsub on the pilot-ts broker: ts-priv subscribes, go-priv publishes',
      { needs: [HS_TG], logs: logsOf('t', 'g') },
      () => pubsub(t(), t(), g()),
    );

    // ---- tasks (port 1003) ----------------------------------------------------------------

    const EN_T = 'tasks: enable-tasks on ts-priv (ts cli)';
    const EN_G = 'tasks: enable-tasks on go-priv (go cli)';
    s.check(EN_T, { needs: [UP_T], logs: logsOf('t') }, async () => {
      const d = await cliData('ts', t(), ['enable-tasks']);
      assert.equal(d.task_exec, true, JSON.stringify(d));
    });
    s.check(EN_G, { needs: [UP_G], logs: logsOf('g') }, async () => {
      const d = await cliData('go', g(), ['enable-tasks']);
      assert.equal(d.task_exec, true, JSON.stringify(d));
    });

    async function taskStatus(
      node: NodeHandle,
      type: 'received' | 'submitted',
      id: string,
    ): Promise<string | undefined> {
      const d = await cliData(node.impl, node, ['task', 'list', '--type', type]);
      const task = arrayOf(d.tasks ?? [], 'tasks').find((x) => x.task_id === id);
      return typeof task?.status === 'string' ? task.status : undefined;
    }
    async function awaitStatus(
      node: NodeHandle,
      type: 'received' | 'submitted',
      id: string,
      want: readonly string[],
    ): Promise<void> {
      let seen: string | undefined;
      await poll(`task ${id} to be ${want.join(' or ')} in ${node.name}'s ${type} list`, 15_000, 400, async () => {
        seen = await taskStatus(node, type, id);
        return seen !== undefined && want.includes(seen) ? true : undefined;
      }).catch((err: Error) => {
        throw new Error(`${err.message} (last status: ${String(seen)})`);
      });
    }

    function taskFlow(subKey: 'g' | 't', workerKey: 'g' | 't', dirName: string, enabled: string): void {
      const state: { id?: string } = {};
      const id = (): string => {
        if (state.id === undefined) throw new Error('no task id');
        return state.id;
      };
      const spec = (k: 'g' | 't'): { impl: Impl; name: string } =>
        daemonSpecs.find((x) => x.key === k) as { impl: Impl; name: string };
      const SUBMIT = `task ${dirName}: submit (${spec(subKey).impl} cli on ${spec(subKey).name} → ${spec(workerKey).name})`;
      const ACCEPT = `task ${dirName}: accept (${spec(workerKey).impl} cli); the submitter sees ACCEPTED`;
      const EXEC = `task ${dirName}: execute (${spec(workerKey).impl} cli); the submitter sees EXECUTING`;
      const RESULTS = `task ${dirName}: send-results (${spec(workerKey).impl} cli); the submitter stores the result, task COMPLETED`;
      let submitter: NodeHandle;
      let worker: NodeHandle;
      const logs = logsOf(subKey, workerKey);
      s.check(SUBMIT, { needs: [HS_TG, enabled], logs }, async () => {
        submitter = need(subKey);
        worker = need(workerKey);
        const d = await cliData(submitter.impl, submitter, [
          'task',
          'submit',
          worker.address,
          '--task',
          `interop task ${dirName} ${rand()}`,
        ]);
        assert.equal(d.accepted, true, `submit reply ${JSON.stringify(d)}`);
        assert.equal(d.status, 200);
        assert.equal(typeof d.task_id, 'string');
        state.id = d.task_id as string;
        await awaitStatus(worker, 'received', id(), ['NEW']);
        await awaitStatus(submitter, 'submitted', id(), ['NEW']);
      });
      s.check(ACCEPT, { needs: [SUBMIT], logs }, async () => {
        const d = await cliData(worker.impl, worker, ['task', 'accept', '--id', id()]);
        assert.equal(d.status, 'ACCEPTED', JSON.stringify(d));
        await awaitStatus(submitter, 'submitted', id(), ['ACCEPTED']);
      });
      s.check(EXEC, { needs: [ACCEPT], logs }, async () => {
        const d = await cliData(worker.impl, worker, ['task', 'execute']);
        assert.equal(d.task_id, id(), JSON.stringify(d));
        assert.equal(d.status, 'EXECUTING');
        await awaitStatus(submitter, 'submitted', id(), ['EXECUTING']);
      });
      s.check(RESULTS, { needs: [EXEC], logs }, async () => {
        const text = `result of ${id()} from ${worker.name}`;
        const d = await cliData(worker.impl, worker, ['task', 'send-results', '--id', id(), '--results', text]);
        assert.equal(d.status, 'SUCCEEDED', JSON.stringify(d));
        assert.equal(d.sent_type, 'text');
        // The reference's CLI lists the submitter's copy as COMPLETED (the status its daemon writes);
        // pilot-ts's CLI may name it SUCCEEDED. The file itself must say COMPLETED, as the reference's.
        await awaitStatus(submitter, 'submitted', id(), ['COMPLETED', 'SUCCEEDED']);
        const taskFile = join(submitter.pilotHome, 'tasks', 'submitted', `${id()}.json`);
        const stored = JSON.parse(await readFile(taskFile, 'utf8')) as Record<string, unknown>;
        assert.equal(stored.status, 'COMPLETED', `status in ${taskFile}`);
        const file = join(submitter.pilotHome, 'tasks', 'results', `${id()}_result.txt`);
        assert.equal(await readFile(file, 'utf8'), text, `result file ${file}`);
      });
    }
    taskFlow('g', 't', 'go→ts', EN_T);
    taskFlow('t', 'g', 'ts→go', EN_G);

    // ---- each CLI against the other implementation's daemon -------------------------------

    /** Problems with the units of a reference-shaped bench reply (MiB/s over the exact duration, whole milliseconds truncated). */
    function benchUnitProblems(d: Record<string, unknown>): string[] {
      const problems: string[] = [];
      for (const [rate, ms] of [
        ['send_mbps', 'send_duration_ms'],
        ['total_mbps', 'total_duration_ms'],
      ] as const) {
        const v = Number(d[rate]);
        const dur = Number(d[ms]);
        const bytes = Number(d.sent_bytes);
        const hi = bytes / (Math.max(dur, 0.5) / 1000) / MiB;
        const lo = bytes / ((dur + 1) / 1000) / MiB;
        if (!(v >= lo * 0.98 && v <= hi * 1.02)) {
          const asMbit = (bytes * 8) / (Math.max(dur, 0.5) / 1000) / 1e6;
          problems.push(
            `${rate} = ${v} for ${bytes} bytes in ${dur} ms: MiB/s would be ${lo.toFixed(2)}–${hi.toFixed(2)}${Math.abs(v - asMbit) / asMbit < 0.05 ? ` (${v} is Mbit/s)` : ''}`,
          );
        }
      }
      return problems;
    }

    function crossCli(cliImpl: Impl, daemonKey: 'g' | 't', peerKey: 'g' | 't'): void {
      const other: Impl = cliImpl === 'go' ? 'ts' : 'go';
      const pre = `${cliImpl} pilotctl → ${other === 'ts' ? 'pilot-ts' : 'Go'} daemon:`;
      const d = (): NodeHandle => need(daemonKey);
      const peer = (): NodeHandle => need(peerKey);
      const logs = logsOf(daemonKey, peerKey);
      const upD = daemonKey === 'g' ? UP_G : UP_T;
      s.check(`${pre} info (json and text)`, { needs: [upD], logs }, async () => {
        const info = await cliData(cliImpl, d(), ['info']);
        assert.equal(info.address, d().address, 'address');
        assert.equal(info.node_id, d().nodeId, 'node_id');
        assert.equal(info.hostname, d().hostname, 'hostname');
        for (const k of [
          'uptime_secs',
          'connections',
          'ports',
          'peers',
          'bytes_sent',
          'bytes_recv',
          'pkts_sent',
          'pkts_recv',
          'encrypt',
          'public_key',
        ])
          assert.ok(k in info, `info lacks ${k}: ${JSON.stringify(info)}`);
        const r = await cli(cliImpl, d(), ['info'], { json: false });
        assert.equal(r.code, 0, `text mode: ${failText(r)}`);
        assert.ok(r.stdout.includes(d().address), `text mode does not show the address: ${r.stdout}`);
      });
      s.check(`${pre} peers (json and text)`, { needs: [HS_TG], logs }, async () => {
        const p = await cliData(cliImpl, d(), ['peers']);
        assert.ok(
          numbers(p.peers, 'node_id', 'peers').includes(peer().nodeId),
          `peers lacks node ${peer().nodeId}: ${JSON.stringify(p)}`,
        );
        const r = await cli(cliImpl, d(), ['peers'], { json: false });
        assert.equal(r.code, 0, `text mode: ${failText(r)}`);
      });
      s.check(`${pre} trust (json and text)`, { needs: [HS_TG], logs }, async () => {
        const tr = await cliData(cliImpl, d(), ['trust']);
        const entry = arrayOf(tr.trusted, 'trusted').find((x) => x.node_id === peer().nodeId);
        assert.ok(entry, `trusted lacks node ${peer().nodeId}: ${JSON.stringify(tr)}`);
        assert.equal(typeof entry.approved_at, 'number', 'approved_at');
        const r = await cli(cliImpl, d(), ['trust'], { json: false });
        assert.equal(r.code, 0, `text mode: ${failText(r)}`);
      });
      let pingReply: Record<string, unknown> | undefined;
      const PING = `${pre} ping the peer by hostname`;
      s.check(PING, { needs: [HS_TG], logs }, async () => {
        pingReply = await cliData(cliImpl, d(), ['ping', peer().hostname, '--count', '2', '--timeout', '20s'], {
          timeoutMs: 30_000,
        });
        const results = arrayOf(pingReply.results, 'results');
        assert.equal(results.length, 2);
        for (const r of results)
          assert.ok(
            r.error === undefined && typeof r.rtt_ms === 'number' && r.bytes === `ping-${String(r.seq)}`.length,
            `ping result ${JSON.stringify(r)}`,
          );
      });
      s.check(
        `${pre} ping JSON: target is the address (as the reference), not the hostname given`,
        { needs: [PING] },
        async () => {
          assert.equal(pingReply?.target, peer().address, `ping reply ${JSON.stringify(pingReply)}`);
        },
      );
      s.check(`${pre} send-message to the peer`, { needs: [HS_TG], logs }, async () => {
        const tag = rand();
        const m = await cliData(cliImpl, d(), ['send-message', peer().address, '--data', `via ${cliImpl} cli ${tag}`]);
        assert.match(String(m.ack), /^ACK TEXT \d+ bytes$/, JSON.stringify(m));
        assert.equal(m.target, peer().address);
        await poll(`the message in ${peer().name}'s inbox`, 10_000, 300, async () => {
          const inbox = await cliData(peer().impl, peer(), ['inbox']);
          return arrayOf(inbox.messages ?? [], 'inbox').some((x) => typeof x.data === 'string' && x.data.includes(tag))
            ? true
            : undefined;
        });
      });
      s.check(
        `${pre} inbox lists what the daemon stored, as its own cli does`,
        { needs: [daemonKey === 't' ? MSG_GT_TEXT : 'send-message text ts→go (inbox of go-priv)'], logs },
        async () => {
          const mine = await cliData(cliImpl, d(), ['inbox']);
          const own = await cliData(d().impl, d(), ['inbox']);
          const key = (list: unknown): string[] =>
            arrayOf(list ?? [], 'messages')
              .map((x) => `${String(x.type)} ${String(x.from)} ${JSON.stringify(x.data)}`)
              .sort();
          assert.ok(key(mine.messages).length > 0, `empty inbox: ${JSON.stringify(mine)}`);
          assert.deepEqual(key(mine.messages), key(own.messages));
          assert.equal(mine.total, key(mine.messages).length, 'total');
        },
      );
      s.check(`${pre} subscribe and publish on the peer's broker`, { needs: [HS_TG], logs }, () =>
        pubsub(peer(), d(), d(), cliImpl, cliImpl),
      );
      let benchReply: Record<string, unknown> | undefined;
      const BENCH1 = `${pre} bench the peer by hostname, 1 MiB`;
      s.check(BENCH1, { needs: [HS_TG], logs }, async () => {
        benchReply = await cliData(cliImpl, d(), ['bench', peer().hostname, '1', '--timeout', '40s'], {
          timeoutMs: 50_000,
        });
        assert.equal(benchReply.sent_bytes, MiB, `sent_bytes: ${JSON.stringify(benchReply)}`);
        assert.equal(benchReply.recv_bytes, MiB, `recv_bytes: ${JSON.stringify(benchReply)}`);
      });
      s.check(`${pre} bench JSON: the reference's fields`, { needs: [BENCH1] }, async () => {
        assert.deepEqual(Object.keys(benchReply ?? {}).sort(), [
          'recv_bytes',
          'send_duration_ms',
          'send_mbps',
          'sent_bytes',
          'target',
          'total_duration_ms',
          'total_mbps',
        ]);
      });
      s.check(`${pre} bench JSON: target is the address, not the hostname given`, { needs: [BENCH1] }, async () => {
        assert.equal(benchReply?.target, peer().address, `bench reply ${JSON.stringify(benchReply)}`);
      });
      s.check(`${pre} bench JSON: send_mbps and total_mbps in MiB/s (bytes/s/2^20)`, { needs: [BENCH1] }, async () => {
        const problems = benchUnitProblems(benchReply ?? {});
        assert.ok(problems.length === 0, `${problems.join('; ')}; bench reply ${JSON.stringify(benchReply)}`);
      });
    }
    crossCli('go', 't', 'g');
    crossCli('ts', 'g', 't');

    // ---- the Go SDK examples through pilot-ts daemons -------------------------------------

    async function clientRetry(
      what: string,
      name: string,
      args: () => string[],
      ok: (r: CtlResult) => boolean,
    ): Promise<CtlResult> {
      return poll(what, 20_000, 700, async () => {
        const r = await runExample(name, args(), 15_000);
        if (!ok(r)) throw new Error(`${name} ${args().join(' ')}: ${failText(r)}`);
        return r;
      });
    }
    const EX_ECHO = 'examples: example-echo serves port 2007 through ts-priv';
    s.check(EX_ECHO, { needs: [UP_T], logs: logsOf('t') }, async () => {
      const p = serveExample(dir, 'example-echo', label, ['-socket', t().socket, '-port', '2007']);
      servers.push(p);
      await p.waitFor(/echo server listening on pilot port 2007/, 10_000);
    });
    for (const [via, viaKey, needs] of [
      ['ts-priv itself', 't', [EX_ECHO]],
      ['go-priv (Go daemon)', 'g', [EX_ECHO, HS_TG]],
    ] as const) {
      s.check(
        `examples: example-client via ${via} → example-echo on ts-priv`,
        { needs: [...needs], logs: logsOf('t', viaKey) },
        async () => {
          const msg = `hello echo ${rand()}`;
          const r = await clientRetry(
            'example-client',
            'example-client',
            () => ['-socket', need(viaKey).socket, '-target', `${t().address}:2007`, '-msg', msg],
            (x) => x.code === 0,
          );
          assert.equal(r.stdout.trim(), msg);
        },
      );
    }
    const EX_WEB = 'examples: example-webserver serves port 8080 through ts-priv';
    s.check(EX_WEB, { needs: [UP_T], logs: logsOf('t') }, async () => {
      const p = serveExample(dir, 'example-webserver', label, ['-socket', t().socket, '-port', '8080']);
      servers.push(p);
      await p.waitFor(/webserver listening on pilot port 8080/, 10_000);
    });
    for (const [via, viaKey, needs] of [
      ['ts-priv itself', 't', [EX_WEB]],
      ['go-priv (Go daemon)', 'g', [EX_WEB, HS_TG]],
    ] as const) {
      s.check(
        `examples: example-httpclient via ${via} → example-webserver on ts-priv`,
        { needs: [...needs], logs: logsOf('t', viaKey) },
        async () => {
          const r = await clientRetry(
            'example-httpclient',
            'example-httpclient',
            () => ['-socket', need(viaKey).socket, '-target', t().address, '-port', '8080', '-path', '/status'],
            (x) => x.code === 0 && x.stdout.includes('200 OK'),
          );
          assert.ok(r.stdout.includes('{"status":"ok","protocol":"pilot","port":8080}'), r.stdout);
        },
      );
    }
    const EX_SEC = 'examples: example-secure server on port 443 through ts-priv';
    s.check(EX_SEC, { needs: [UP_T], logs: logsOf('t') }, async () => {
      const p = serveExample(dir, 'example-secure', label, ['-socket', t().socket, '-mode', 'server']);
      servers.push(p);
      await sleep(500);
      assert.equal(p.child.exitCode, null, `example-secure exited: ${p.tail(10)}`);
    });
    for (const [via, viaKey, needs] of [
      ['ts-priv itself', 't', [EX_SEC]],
      ['go-priv (Go daemon)', 'g', [EX_SEC, HS_TG]],
    ] as const) {
      s.check(
        `examples: example-secure client via ${via} → server on ts-priv`,
        { needs: [...needs], logs: logsOf('t', viaKey) },
        async () => {
          const msg = `secret ${rand()}`;
          const r = await clientRetry(
            'example-secure client',
            'example-secure',
            () => ['-socket', need(viaKey).socket, '-mode', 'client', '-target', t().address, '-msg', msg],
            (x) => x.code === 0,
          );
          assert.equal(r.stdout.trim(), `secure-echo: ${msg}`);
        },
      );
    }
    const EX_DX = 'examples: example-dataexchange server on port 1001 through ts-ex';
    s.check(EX_DX, { needs: [UP_TX], logs: logsOf('tx') }, async () => {
      const p = serveExample(dir, 'example-dataexchange', label, ['-socket', tx().socket, '-mode', 'server']);
      servers.push(p);
      await sleep(500);
      assert.equal(p.child.exitCode, null, `example-dataexchange exited: ${p.tail(10)}`);
    });
    s.check(
      'examples: example-dataexchange client via ts-ex itself → its server',
      { needs: [EX_DX], logs: logsOf('tx') },
      async () => {
        const msg = `dx ${rand()}`;
        const r = await clientRetry(
          'example-dataexchange client',
          'example-dataexchange',
          () => ['-socket', tx().socket, '-mode', 'client', '-target', tx().address, '-msg', msg],
          (x) => x.code === 0,
        );
        assert.match(
          r.stderr,
          new RegExp(`response: ack: received TEXT \\(${Buffer.byteLength(msg)} bytes\\)`),
          r.stderr,
        );
        assert.match(r.stderr, /response: ack: received JSON \(23 bytes\)/, r.stderr);
      },
    );
    s.check(
      "examples: example-dataexchange client via ts-priv → go-priv's built-in service",
      { needs: [HS_TG], logs: logsOf('t', 'g') },
      async () => {
        const msg = `dx ${rand()}`;
        const r = await clientRetry(
          'example-dataexchange client',
          'example-dataexchange',
          () => ['-socket', t().socket, '-mode', 'client', '-target', g().address, '-msg', msg],
          (x) => x.code === 0,
        );
        assert.match(r.stderr, new RegExp(`response: ACK TEXT ${Buffer.byteLength(msg)} bytes`), r.stderr);
        assert.match(r.stderr, /response: ACK JSON 23 bytes/, r.stderr);
      },
    );
    const EX_ES = 'examples: example-eventstream broker on port 1002 through ts-ex';
    s.check(EX_ES, { needs: [UP_TX], logs: logsOf('tx') }, async () => {
      const p = serveExample(dir, 'example-eventstream', label, ['-socket', tx().socket, '-mode', 'server']);
      servers.push(p);
      await sleep(500);
      assert.equal(p.child.exitCode, null, `example-eventstream exited: ${p.tail(10)}`);
    });
    async function exampleSubPub(
      viaSub: NodeHandle,
      viaPub: NodeHandle,
      broker: NodeHandle,
      tag: string,
    ): Promise<void> {
      const topic = `ex.${rand()}`;
      const msg = `event ${rand()}`;
      const sub = serveExample(dir, 'example-eventstream', `${label}-sub-${tag}`, [
        '-socket',
        viaSub.socket,
        '-mode',
        'sub',
        '-target',
        broker.address,
        '-topic',
        topic,
      ]);
      servers.push(sub);
      try {
        await sub.waitFor(/subscribed to/, 15_000);
        const deadline = Date.now() + 20_000;
        let got = false;
        let last = '';
        while (!got && Date.now() < deadline) {
          const r = await runExample(
            'example-eventstream',
            ['-socket', viaPub.socket, '-mode', 'pub', '-target', broker.address, '-topic', topic, '-msg', msg],
            15_000,
          );
          if (r.code !== 0) last = failText(r);
          got = await sub.waitFor(new RegExp(`^\\[${topic.replace('.', '\\.')}\\] ${msg}$`), 2000).then(
            () => true,
            () => false,
          );
        }
        assert.ok(
          got,
          `the subscriber printed no "[${topic}] ${msg}"; its output:\n${sub.tail(10)}${last ? `\nlast publish error: ${last}` : ''}`,
        );
      } finally {
        await sub.stop();
      }
    }
    s.check(
      'examples: example-eventstream sub and pub via ts-ex itself → its broker',
      { needs: [EX_ES], logs: logsOf('tx') },
      () => exampleSubPub(tx(), tx(), tx(), 'self'),
    );
    s.check(
      "examples: example-eventstream sub and pub via ts-priv → go-priv's built-in broker",
      { needs: [HS_TG], logs: logsOf('t', 'g') },
      () => exampleSubPub(t(), t(), g(), 'go'),
    );

    // ---- what the logs say about the registry --------------------------------------------

    s.check('registry log: no signed request refused', { needs: [REG] }, async () => {
      const bad = (rv?.proc.lines ?? []).filter((l) => isWarning(l) && REFUSED_SIGNATURE.test(logMessage(l)));
      assert.ok(bad.length === 0, `the registry (${rv?.proc.logPath}) refused requests:\n${bad.slice(-10).join('\n')}`);
    });
    const registryComplaints = (keys: readonly (keyof typeof nodes)[], re: RegExp): string[] =>
      keys.flatMap((k) =>
        (nodes[k]?.proc.lines ?? []).filter((l) => isWarning(l) && re.test(logMessage(l))).map((l) => `${k}: ${l}`),
      );
    s.check('pilot-ts daemon logs: no registry request refused or failed', { needs: [REG] }, async () => {
      const bad = registryComplaints(['t', 'tp', 'tx'], /registry|signature|handshake/i);
      assert.ok(bad.length === 0, bad.slice(-10).join('\n'));
    });
    // The pilot-ts registry refuses update_polo_score without its operator token (README, Registry);
    // the Go submitter's daemon sends one after task results and logs the refusal.
    const documented = regImpl === 'ts' ? /failed to update (submitter|receiver) polo score/ : /$^/;
    s.check('Go daemon logs: no registry request refused or failed', { needs: [REG] }, async () => {
      const bad = registryComplaints(['g', 'gp'], /registry|heartbeat|handshake|signature/i).filter(
        (l) => !documented.test(logMessage(l)),
      );
      assert.ok(bad.length === 0, bad.slice(-10).join('\n'));
    });
  });
}

// ---------------------------------------------------------------------------------------------

if (GO_BIN === undefined) {
  describe('interop with the Go reference', {
    skip: 'PILOT_GO_BIN is not set (the directory of the Go reference binaries)',
  }, () => {});
} else {
  const missing = missingGoBinaries(GO_BIN);
  if (missing.length > 0) {
    it('the Go reference binaries are present', () => assert.fail(`missing in ${GO_BIN}: ${missing.join(', ')}`));
  } else {
    const which = process.env.PILOT_INTEROP_REGISTRY;
    if (which === undefined || which === '' || which === 'go') registrySuite('go');
    if (which === undefined || which === '' || which === 'ts') registrySuite('ts');
    after(() => {
      let revision = '';
      try {
        revision = execFileSync('git', ['describe', '--always', '--dirty'], { encoding: 'utf8' }).trim();
      } catch {
        // not a checkout
      }
      emitSummary({ revision });
    });
  }
}
