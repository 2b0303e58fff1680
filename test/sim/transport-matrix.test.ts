/**
 * Stream transport under adverse network conditions, in the deterministic simulator.
 *
 *   SIM_SEEDS=N            run N times as many seeds per case (long run)
 *   SIM_CASE=<id> SIM_SEED=<n>
 *                          replay one case (ids are printed in every failure message);
 *                          SIM_CASE=<condition> runs every size of that condition
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { TransportEndpoint } from '../../src/transport/endpoint.js';
import { addEndpointNode } from '../../src/transport/sim/endpoint-node.js';
import type { LinkConfig } from '../../src/transport/sim/link.js';
import { formatTrace, SimNetwork, type SimNode } from '../../src/transport/sim/network.js';
import { Prng } from '../../src/transport/sim/prng.js';
import { startTransfer, transfer, type TransferResult } from '../../src/transport/sim/transfer.js';
import type { CloseReason, ConnectionOptions, EndpointEvent } from '../../src/transport/types.js';

const SEED_FACTOR = Math.max(1, Number.parseInt(process.env.SIM_SEEDS ?? '1', 10) || 1);
const ONLY_SEED = process.env.SIM_SEED === undefined ? undefined : Number.parseInt(process.env.SIM_SEED, 10);
const ONLY_CASE = process.env.SIM_CASE;

const KiB = 1024;
const MiB = 1024 * 1024;
const PORT = 1000;
/** Virtual time allowed for one transfer, however bad the network. */
const MAX_TRANSFER_MS = 30 * 60 * 1000;
/** After both sides closed: long enough for TIME_WAIT (10 s) and any reaping to finish. */
const LINGER_MS = 60 * 1000;

interface Condition {
  readonly name: string;
  readonly ab: Partial<LinkConfig>;
  /** The reverse direction (acknowledgments); defaults to `ab`. */
  readonly ba?: Partial<LinkConfig>;
  readonly connection?: Partial<ConnectionOptions>;
}

const rtt = (ms: number): Partial<LinkConfig> => ({ latencyMs: ms / 2 });

const CONDITIONS: readonly Condition[] = [
  { name: 'clean-rtt1', ab: rtt(1) },
  { name: 'clean-rtt20', ab: rtt(20) },
  { name: 'clean-rtt100', ab: rtt(100) },
  { name: 'clean-rtt300', ab: rtt(300) },
  { name: 'loss1-rtt20', ab: { ...rtt(20), loss: 0.01 } },
  { name: 'loss5-rtt20', ab: { ...rtt(20), loss: 0.05 } },
  { name: 'loss10-rtt20', ab: { ...rtt(20), loss: 0.1 } },
  // At 20% each way a dial or a segment fails its default retry budget about once in a few hundred tries.
  { name: 'loss20-rtt20', ab: { ...rtt(20), loss: 0.2 }, connection: { maxSynRetries: 12, maxRetransmits: 20 } },
  { name: 'loss1-rtt300', ab: { ...rtt(300), loss: 0.01 } },
  { name: 'loss5-rtt100-jitter', ab: { ...rtt(100), jitterMs: 5, loss: 0.05 } },
  { name: 'loss2-rtt1', ab: { ...rtt(1), loss: 0.02 } },
  { name: 'reorder-rtt20', ab: { ...rtt(20), reorder: 0.1, reorderDelayMs: 30 } },
  { name: 'dup-rtt20', ab: { ...rtt(20), duplicate: 0.1 } },
  { name: 'corrupt-rtt20', ab: { ...rtt(20), corrupt: 0.05 } },
  { name: 'asym-dataloss10-rtt20', ab: { ...rtt(20), loss: 0.1 }, ba: rtt(20) },
  { name: 'asym-ackloss20-rtt20', ab: rtt(20), ba: { ...rtt(20), loss: 0.2 } },
  { name: 'bottleneck-rtt50', ab: { ...rtt(50), bandwidthBytesPerSec: 2 * MiB, queueLimitBytes: 64 * KiB } },
  {
    name: 'chaos-rtt20',
    ab: { ...rtt(20), jitterMs: 2, loss: 0.03, reorder: 0.05, duplicate: 0.03, corrupt: 0.02 },
    ba: { ...rtt(20), jitterMs: 2, loss: 0.05, reorder: 0.05, duplicate: 0.03, corrupt: 0.02 },
  },
];

const SMALL_SIZES = [0, 1, 4095, 4096, 4097, 100_000];
const LARGE_CASES: readonly { condition: string; bytes: number }[] = [
  { condition: 'clean-rtt20', bytes: 6 * MiB + 3 },
  { condition: 'loss1-rtt20', bytes: 4_000_000 },
  { condition: 'bottleneck-rtt50', bytes: 3 * MiB },
  { condition: 'chaos-rtt20', bytes: 3 * MiB + 1 },
];

function seeds(count: number): number[] {
  if (ONLY_SEED !== undefined) return [ONLY_SEED];
  return Array.from({ length: count * SEED_FACTOR }, (_, i) => i + 1);
}

function selected(caseId: string): boolean {
  return ONLY_CASE === undefined || caseId === ONLY_CASE || caseId.startsWith(`${ONLY_CASE}/`);
}

/** Registers one test per seed; failures carry the command line that replays them. */
function simCase(caseId: string, seedCount: number, body: (seed: number, tag: string) => void): void {
  if (!selected(caseId)) return;
  for (const seed of seeds(seedCount)) {
    const tag = `[SIM_CASE=${caseId} SIM_SEED=${seed}]`;
    test(`${caseId} seed=${seed}`, () => {
      try {
        body(seed, tag);
      } catch (e) {
        if (e instanceof Error && !e.message.includes(tag)) e.message = `${tag} ${e.message}`;
        throw e;
      }
    });
  }
}

type Node = SimNode<TransportEndpoint>;

interface World {
  net: SimNetwork;
  a: Node;
  b: Node;
}

function world(seed: number, cond: Condition, trace?: (line: string) => void): World {
  const net = new SimNetwork({ seed, ...(trace === undefined ? {} : { trace: (e) => trace(formatTrace(e)) }) });
  const options = cond.connection === undefined ? {} : { connection: cond.connection };
  const a = addEndpointNode(net, 1, options);
  const b = addEndpointNode(net, 2, options);
  net.connect(a, b, cond.ab, cond.ba ?? cond.ab);
  return { net, a, b };
}

function describeResult(r: TransferResult): string {
  const side = (s: TransferResult['dialer']): string => {
    const st = s.stats;
    const stats =
      st === undefined
        ? 'no stats'
        : `sent=${st.bytesSent} recv=${st.bytesRecv} rtx=${st.retransmits} fast=${st.fastRetransmits} rto=${st.timeouts} srtt=${st.srttMs.toFixed(1)} cwnd=${st.cwnd} inFlight=${st.inFlight}`;
    return `reason=${s.reason ?? 'none'} closedAt=${s.closedAt ?? '-'} wrote=${s.bytesWritten} read=${s.bytesRead} mismatch=${s.firstMismatch ?? 'none'} ${stats}`;
  };
  return `finished=${r.finished} bytes=${r.bytes} duration=${r.durationMs ?? '-'}ms\n  dialer:   ${side(r.dialer)}\n  acceptor: ${side(r.acceptor)}`;
}

function assertDelivered(r: TransferResult, tag: string): void {
  const info = `${tag}\n  ${describeResult(r)}`;
  assert.ok(r.finished, `transfer did not finish: ${info}`);
  assert.equal(r.acceptor.bytesRead, r.bytes, `acceptor read the wrong number of bytes: ${info}`);
  assert.equal(r.dialer.bytesRead, r.replyBytes, `dialer read the wrong number of bytes: ${info}`);
  assert.ok(r.ok, `payload differs: ${info}`);
  assert.equal(r.acceptor.receivedSha256, r.dialer.sentSha256, `sha256 differs: ${info}`);
  assert.equal(r.dialer.reason, 'closed', `dialer close reason: ${info}`);
  assert.equal(r.acceptor.reason, 'closed', `acceptor close reason: ${info}`);
}

function assertChecksumsHeld(net: SimNetwork, tag: string): void {
  for (const link of net.allLinks()) {
    const s = link.stats;
    assert.equal(s.checksumMisses, 0, `${tag} corrupted packets decoded on ${link.name}`);
    assert.equal(s.caughtByChecksum, s.corrupted, `${tag} corrupted packets unaccounted for on ${link.name}`);
  }
}

/** Lets TIME_WAIT and any timers run out, then requires both endpoints to be empty. */
function assertNoLeak(w: World, tag: string): void {
  w.net.runFor(LINGER_MS);
  for (const node of [w.a, w.b]) {
    const left = node.endpoint.connections();
    assert.deepEqual(
      left.map((c) => `${c.id}:${c.state}`),
      [],
      `${tag} ${node.name} still has connections at t=${w.net.now}ms`,
    );
  }
}

function runTransferCase(cond: Condition, bytes: number, seed: number, tag: string): void {
  const w = world(seed, cond);
  const r = transfer(w.net, { from: w.a, to: w.b, port: PORT, bytes, seed, maxVirtualMs: MAX_TRANSFER_MS });
  assertDelivered(r, tag);
  assertChecksumsHeld(w.net, tag);
  assertNoLeak(w, tag);
}

function condition(name: string): Condition {
  const c = CONDITIONS.find((x) => x.name === name);
  if (c === undefined) throw new Error(`unknown condition ${name}`);
  return c;
}

describe('transfers across conditions and sizes', () => {
  for (const cond of CONDITIONS) {
    describe(cond.name, () => {
      for (const bytes of SMALL_SIZES)
        simCase(`${cond.name}/${bytes}`, 2, (seed, tag) => runTransferCase(cond, bytes, seed, tag));
      simCase(`${cond.name}/${MiB}`, 1, (seed, tag) => runTransferCase(cond, MiB, seed, tag));
    });
  }
  describe('large', () => {
    for (const { condition: name, bytes } of LARGE_CASES) {
      simCase(`${name}/${bytes}`, 1, (seed, tag) => runTransferCase(condition(name), bytes, seed, tag));
    }
  });
});

describe('partitions', () => {
  const path: Condition = {
    name: 'partition',
    ab: { ...rtt(40), bandwidthBytesPerSec: 2 * MiB, queueLimitBytes: 4 * MiB },
  };

  for (const outageMs of [1_000, 3_000, 5_000]) {
    simCase(`partition-heal-${outageMs}ms`, 2, (seed, tag) => {
      const w = world(seed, path);
      const t = startTransfer(w.net, { from: w.a, to: w.b, port: PORT, bytes: 2 * MiB, seed });
      w.net.at(300, () => w.net.partition(w.a, w.b));
      w.net.at(300 + outageMs, () => w.net.heal(w.a, w.b));
      w.net.runUntil(() => t.done, MAX_TRANSFER_MS);
      const r = t.result();
      assertDelivered(r, tag);
      assert.ok((r.durationMs ?? 0) > outageMs, `${tag} the outage did not overlap the transfer: ${describeResult(r)}`);
      assertNoLeak(w, tag);
    });
  }

  simCase('partition-forever', 1, (seed, tag) => {
    const w = world(seed, path);
    const t = startTransfer(w.net, { from: w.a, to: w.b, port: PORT, bytes: 2 * MiB, seed });
    w.net.at(300, () => w.net.partition(w.a, w.b));
    w.net.runUntil(() => t.done, MAX_TRANSFER_MS);
    const r = t.result();
    const info = `${tag}\n  ${describeResult(r)}`;
    assert.ok(r.finished, `both sides should give up: ${info}`);
    assert.equal(r.dialer.reason, 'retransmit_timeout', `sender reason: ${info}`);
    const receiverReasons: CloseReason[] = ['idle_timeout', 'retransmit_timeout'];
    assert.ok(
      r.acceptor.reason !== undefined && receiverReasons.includes(r.acceptor.reason),
      `receiver reason: ${info}`,
    );
    assert.ok(r.acceptor.bytesRead < r.bytes, `receiver cannot have everything: ${info}`);
    assertNoLeak(w, tag);
  });

  simCase('partition-before-dial', 1, (seed, tag) => {
    const w = world(seed, path);
    w.net.partition(w.a, w.b);
    const r = transfer(w.net, { from: w.a, to: w.b, port: PORT, bytes: 1000, seed, maxVirtualMs: MAX_TRANSFER_MS });
    assert.equal(r.dialer.reason, 'dial_timeout', `${tag} ${describeResult(r)}`);
    assert.equal(r.acceptor.connId, undefined, `${tag} nothing reached the acceptor`);
    assertNoLeak(w, tag);
  });
});

describe('several streams', () => {
  const shared: Condition = {
    name: 'shared',
    ab: { ...rtt(20), loss: 0.01, bandwidthBytesPerSec: 4 * MiB, queueLimitBytes: 256 * KiB },
  };

  simCase('opposite-directions', 2, (seed, tag) => {
    const w = world(seed, shared);
    const ab = startTransfer(w.net, { from: w.a, to: w.b, port: PORT, bytes: MiB, seed });
    const ba = startTransfer(w.net, { from: w.b, to: w.a, port: PORT + 1, bytes: MiB + 17, seed: seed + 1000 });
    w.net.runUntil(() => ab.done && ba.done, MAX_TRANSFER_MS);
    assertDelivered(ab.result(), `${tag} a->b`);
    assertDelivered(ba.result(), `${tag} b->a`);
    assertNoLeak(w, tag);
  });

  simCase('both-ways-one-connection', 2, (seed, tag) => {
    const w = world(seed, shared);
    const r = transfer(w.net, {
      from: w.a,
      to: w.b,
      port: PORT,
      bytes: 500_000,
      replyBytes: 700_001,
      seed,
      maxVirtualMs: MAX_TRANSFER_MS,
    });
    assertDelivered(r, tag);
    assertNoLeak(w, tag);
  });

  simCase('concurrent-same-port', 2, (seed, tag) => {
    const w = world(seed, shared);
    const transfers = Array.from({ length: 5 }, (_, i) =>
      startTransfer(w.net, { from: w.a, to: w.b, port: PORT, bytes: 200_000 + i * 4096, seed: seed * 100 + i }),
    );
    w.net.runUntil(() => transfers.every((t) => t.done), MAX_TRANSFER_MS);
    for (const [i, t] of transfers.entries()) assertDelivered(t.result(), `${tag} stream ${i}`);
    assertNoLeak(w, tag);
  });

  simCase('concurrent-mixed-ports-and-directions', 1, (seed, tag) => {
    const w = world(seed, shared);
    const transfers = [
      startTransfer(w.net, { from: w.a, to: w.b, port: 1000, bytes: 300_000, seed }),
      startTransfer(w.net, { from: w.a, to: w.b, port: 1001, bytes: 0, seed: seed + 1 }),
      startTransfer(w.net, { from: w.a, to: w.b, port: 1001, bytes: 4097, seed: seed + 2 }),
      startTransfer(w.net, { from: w.b, to: w.a, port: 1000, bytes: 250_000, replyBytes: 1, seed: seed + 3 }),
    ];
    w.net.runUntil(() => transfers.every((t) => t.done), MAX_TRANSFER_MS);
    for (const [i, t] of transfers.entries()) assertDelivered(t.result(), `${tag} stream ${i}`);
    assertNoLeak(w, tag);
  });
});

describe('datagrams and refusals', () => {
  simCase('datagrams-lossy', 2, (seed, tag) => {
    const cond: Condition = {
      name: 'dgram',
      ab: { ...rtt(20), loss: 0.1, duplicate: 0.05, reorder: 0.1, corrupt: 0.05 },
    };
    const w = world(seed, cond);
    const rng = new Prng(seed).fork('datagrams');
    const sent = new Map<string, Uint8Array>();
    const received = new Map<string, number>();
    const onDatagram = (to: Node) => (e: EndpointEvent) => {
      if (e.type !== 'datagram') return;
      const key = new TextDecoder().decode(e.data.subarray(0, 12));
      const original = sent.get(key);
      assert.ok(original !== undefined, `${tag} unknown datagram ${key} at ${to.name}`);
      assert.deepEqual(new Uint8Array(e.data), original, `${tag} datagram ${key} altered`);
      received.set(key, (received.get(key) ?? 0) + 1);
    };
    w.a.on(onDatagram(w.a));
    w.b.on(onDatagram(w.b));
    const stream = startTransfer(w.net, { from: w.a, to: w.b, port: PORT, bytes: 200_000, seed });
    const count = 300;
    for (let i = 0; i < count; i++) {
      const [from, to] = i % 2 === 0 ? [w.a, w.b] : [w.b, w.a];
      const data = new Uint8Array(12 + rng.int(8000));
      rng.fill(data);
      const key = `dg${String(i).padStart(10, '0')}`;
      data.set(new TextEncoder().encode(key));
      sent.set(key, data);
      w.net.at(i * 2, () => from.endpoint.sendDatagram({ addr: to.addr, port: 5000 + (i % 7) }, data, w.net.now));
    }
    w.net.runUntil(() => stream.done && w.net.now > count * 2 + 1000, MAX_TRANSFER_MS);
    assertDelivered(stream.result(), tag);
    const total = [...received.values()].reduce((x, y) => x + y, 0);
    const dups = w.net.allLinks().reduce((x, l) => x + l.stats.duplicated, 0);
    assert.ok(received.size > count * 0.7, `${tag} only ${received.size}/${count} datagrams arrived`);
    assert.ok(received.size < count, `${tag} every datagram arrived despite 10% loss`);
    assert.ok(total <= count + dups, `${tag} ${total} deliveries from ${count} datagrams and ${dups} link duplicates`);
    assertChecksumsHeld(w.net, tag);
    assertNoLeak(w, tag);
  });

  for (const loss of [0, 0.1]) {
    simCase(`refused-loss${loss * 100}`, 2, (seed, tag) => {
      const w = world(seed, { name: 'refused', ab: { ...rtt(20), loss } });
      const reasons: CloseReason[] = [];
      const id = w.a.endpoint.dial({ addr: w.b.addr, port: 4242 }, w.net.now);
      w.a.on((e) => {
        if (e.type === 'closed' && e.connId === id) reasons.push(e.reason);
      });
      w.net.runUntil(() => reasons.length > 0, MAX_TRANSFER_MS);
      assert.deepEqual(reasons, ['refused'], `${tag} dial to a closed port`);
      assertNoLeak(w, tag);
    });
  }
});

describe('engine determinism', () => {
  simCase('same-seed-same-run', 1, (seed, tag) => {
    const run = (): { trace: string[]; result: TransferResult } => {
      const trace: string[] = [];
      const w = world(seed, condition('chaos-rtt20'), (line) => trace.push(line));
      const result = transfer(w.net, {
        from: w.a,
        to: w.b,
        port: PORT,
        bytes: 300_000,
        seed,
        maxVirtualMs: MAX_TRANSFER_MS,
      });
      return { trace, result };
    };
    const first = run();
    const second = run();
    assertDelivered(first.result, tag);
    assert.equal(second.result.durationMs, first.result.durationMs, `${tag} durations differ`);
    assert.equal(second.trace.length, first.trace.length, `${tag} trace lengths differ`);
    const diverge = first.trace.findIndex((line, i) => line !== second.trace[i]);
    assert.equal(
      diverge,
      -1,
      `${tag} traces diverge at entry ${diverge}: ${first.trace[diverge]} vs ${second.trace[diverge]}`,
    );
  });
});
