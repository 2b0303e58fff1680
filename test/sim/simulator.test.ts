import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { makeAddr, type Addr } from '../../src/protocol/address.js';
import { encodePacket, makePacket, Proto, decodePacket, type Packet } from '../../src/protocol/packet.js';
import type { TransportEndpoint } from '../../src/transport/endpoint.js';
import { flipBits, type LinkConfig } from '../../src/transport/sim/link.js';
import { formatTrace, SimError, SimNetwork, type SimEndpoint, type SimNode } from '../../src/transport/sim/network.js';
import { Prng } from '../../src/transport/sim/prng.js';
import type { EndpointEvent } from '../../src/transport/types.js';

// TransportEndpoint must plug into the simulator as is.
export function asSimEndpoint(e: TransportEndpoint): SimEndpoint {
  return e;
}

const ECHO_PORT = 7;
const HEADER = 34;

interface Arrival {
  readonly at: number;
  readonly packet: Packet;
}

/** A minimal endpoint: sends datagrams on demand or at a set time, records arrivals, optionally echoes. */
class TestNode implements SimEndpoint {
  readonly arrivals: Arrival[] = [];
  private readonly out: Packet[] = [];
  private readonly events: EndpointEvent[] = [];
  /** Pending timed sends, sorted by time (insertion order among equal times). */
  private readonly timers: { at: number; packet: Packet }[] = [];
  private timersHead = 0;

  constructor(
    readonly addr: Addr,
    private readonly echo = false,
  ) {}

  packet(dst: Addr, payload: Uint8Array, dstPort = 9, srcPort = 5000): Packet {
    return makePacket({
      flags: 0,
      protocol: Proto.Datagram,
      src: this.addr,
      dst,
      srcPort,
      dstPort,
      seq: 0,
      ack: 0,
      window: 0,
      payload,
    });
  }

  send(dst: Addr, payload: Uint8Array, dstPort = 9, srcPort = 5000): void {
    this.out.push(this.packet(dst, payload, dstPort, srcPort));
  }

  sendAt(at: number, dst: Addr, payload: Uint8Array, dstPort = 9): void {
    const t = this.timers;
    let lo = this.timersHead;
    let hi = t.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((t[mid] as { at: number }).at <= at) lo = mid + 1;
      else hi = mid;
    }
    t.splice(lo, 0, { at, packet: this.packet(dst, payload, dstPort) });
  }

  handlePacket(packet: Packet, now: number): void {
    this.arrivals.push({ at: now, packet });
    this.events.push({
      type: 'datagram',
      src: { addr: packet.src, port: packet.srcPort },
      dstPort: packet.dstPort,
      data: packet.payload,
    });
    if (this.echo && packet.dstPort === ECHO_PORT) {
      this.out.push(
        makePacket({ ...packet, src: this.addr, dst: packet.src, srcPort: packet.dstPort, dstPort: packet.srcPort }),
      );
    }
  }

  handleTimeout(now: number): void {
    for (let t = this.timers[this.timersHead]; t !== undefined && t.at <= now; t = this.timers[this.timersHead]) {
      this.out.push(t.packet);
      this.timersHead++;
    }
  }

  pollTransmit(): Packet | undefined {
    return this.out.shift();
  }

  pollEvent(): EndpointEvent | undefined {
    return this.events.shift();
  }

  nextTimeout(): number | undefined {
    return this.timers[this.timersHead]?.at;
  }
}

/** Payload of `size` bytes (≥ 4) starting with a big-endian sequence number. */
function numbered(n: number, size = 64): Uint8Array {
  const buf = new Uint8Array(Math.max(4, size));
  new DataView(buf.buffer).setUint32(0, n);
  for (let i = 4; i < buf.length; i++) buf[i] = (n * 31 + i) & 0xff;
  return buf;
}

function seqOf(p: Packet): number {
  return new DataView(p.payload.buffer, p.payload.byteOffset, p.payload.byteLength).getUint32(0);
}

interface Pair {
  net: SimNetwork;
  a: SimNode<TestNode>;
  b: SimNode<TestNode>;
}

function pair(seed: number, ab: Partial<LinkConfig>, ba: Partial<LinkConfig> = ab, echo = false): Pair {
  const net = new SimNetwork({ seed, stallSteps: 5000 });
  const a = net.addNode('a', makeAddr(1, 1), new TestNode(makeAddr(1, 1), echo));
  const b = net.addNode('b', makeAddr(1, 2), new TestNode(makeAddr(1, 2), echo));
  net.connect(a, b, ab, ba);
  return { net, a, b };
}

/** Sends `count` packets from a to b, one every `intervalMs`, starting now. */
function sendSeries({ net, a, b }: Pair, count: number, intervalMs: number, size = 64): void {
  for (let i = 0; i < count; i++) a.endpoint.sendAt(net.now + i * intervalMs, b.addr, numbered(i, size));
}

describe('links', () => {
  test('latency is applied per direction', () => {
    const p = pair(1, { latencyMs: 10 }, { latencyMs: 30 }, true);
    p.a.endpoint.send(p.b.addr, numbered(1), ECHO_PORT);
    p.net.runFor(1000);
    assert.deepEqual(
      p.b.endpoint.arrivals.map((x) => x.at),
      [10],
    );
    assert.deepEqual(
      p.a.endpoint.arrivals.map((x) => x.at),
      [40],
    );
    assert.equal(p.net.now, 1000);
  });

  test('bandwidth serializes packets one after another', () => {
    // 1000-byte packets at 100 kB/s take 10 ms each.
    const p = pair(1, { latencyMs: 5, bandwidthBytesPerSec: 100_000 });
    for (let i = 0; i < 5; i++) p.a.endpoint.send(p.b.addr, numbered(i, 1000 - HEADER));
    p.net.runFor(1000);
    assert.deepEqual(
      p.b.endpoint.arrivals.map((x) => x.at),
      [15, 25, 35, 45, 55],
    );
    assert.deepEqual(
      p.b.endpoint.arrivals.map((x) => seqOf(x.packet)),
      [0, 1, 2, 3, 4],
    );
  });

  test('a full queue tail-drops, and accepts again once drained', () => {
    const p = pair(1, { latencyMs: 1, bandwidthBytesPerSec: 100_000, queueLimitBytes: 3000 });
    for (let i = 0; i < 10; i++) p.a.endpoint.send(p.b.addr, numbered(i, 1000 - HEADER));
    p.net.runFor(100);
    const link = p.net.link(p.a, p.b);
    assert.equal(link.stats.queueDrops, 7);
    assert.deepEqual(
      p.b.endpoint.arrivals.map((x) => seqOf(x.packet)),
      [0, 1, 2],
    );
    p.a.endpoint.send(p.b.addr, numbered(99, 1000 - HEADER));
    p.net.runFor(100);
    assert.equal(p.b.endpoint.arrivals.length, 4);
    assert.equal(link.stats.queueDrops, 7);
  });

  test('loss rate matches the configured probability', () => {
    const p = pair(11, { latencyMs: 2, loss: 0.1 });
    const n = 20_000;
    sendSeries(p, n, 0.1);
    p.net.runFor(10_000);
    const s = p.net.link(p.a, p.b).stats;
    assert.equal(s.sent, n);
    assert.equal(s.delivered + s.lost, n);
    assert.equal(p.b.endpoint.arrivals.length, s.delivered);
    const rate = s.lost / n;
    assert.ok(rate > 0.09 && rate < 0.11, `loss rate ${rate}`);
  });

  test('duplication delivers some packets twice', () => {
    const p = pair(12, { latencyMs: 2, duplicate: 0.2 });
    const n = 10_000;
    sendSeries(p, n, 0.1);
    p.net.runFor(10_000);
    const s = p.net.link(p.a, p.b).stats;
    const rate = s.duplicated / n;
    assert.ok(rate > 0.18 && rate < 0.22, `duplication rate ${rate}`);
    assert.equal(p.b.endpoint.arrivals.length, n + s.duplicated);
    const seen = new Map<number, number>();
    for (const x of p.b.endpoint.arrivals) seen.set(seqOf(x.packet), (seen.get(seqOf(x.packet)) ?? 0) + 1);
    assert.equal(seen.size, n);
    assert.equal([...seen.values()].filter((c) => c === 2).length, s.duplicated);
  });

  test('reordering lets later packets overtake; jitter alone keeps order', () => {
    const inversions = (p: Pair): number => {
      const seqs = p.b.endpoint.arrivals.map((x) => seqOf(x.packet));
      let count = 0;
      for (let i = 1; i < seqs.length; i++) if ((seqs[i] as number) < (seqs[i - 1] as number)) count++;
      return count;
    };
    const reordered = pair(13, { latencyMs: 10, reorder: 0.1, reorderDelayMs: 20 });
    sendSeries(reordered, 1000, 1);
    reordered.net.runFor(5000);
    assert.equal(reordered.b.endpoint.arrivals.length, 1000);
    const r = reordered.net.link(reordered.a, reordered.b).stats.reordered;
    assert.ok(r > 70 && r < 130, `reordered ${r}`);
    assert.ok(inversions(reordered) > 50, `inversions ${inversions(reordered)}`);

    const jittered = pair(13, { latencyMs: 10, jitterMs: 5 });
    sendSeries(jittered, 1000, 1);
    jittered.net.runFor(5000);
    assert.equal(inversions(jittered), 0);
    const delays = jittered.b.endpoint.arrivals.map((x) => x.at - seqOf(x.packet));
    assert.ok(delays.every((d) => d >= 10));
    assert.ok(new Set(delays).size > 100, 'jitter varies the delay');
  });

  test('flipBits flips exactly the requested number of distinct bits', () => {
    const rng = new Prng(4);
    const original = new Uint8Array(100);
    for (let k = 1; k <= 3; k++) {
      for (let trial = 0; trial < 100; trial++) {
        const out = flipBits(original, k, rng);
        let bits = 0;
        for (const byte of out) for (let v = byte; v !== 0; v &= v - 1) bits++;
        assert.equal(bits, k);
      }
    }
    assert.ok(
      original.every((b) => b === 0),
      'the original is untouched',
    );
  });

  test('corruption is caught by the checksum and never delivered', () => {
    const p = pair(14, { latencyMs: 1, corrupt: 0.3 });
    const n = 5000;
    const rng = new Prng(77);
    const sizes: number[] = [];
    for (let i = 0; i < n; i++) {
      const size = 4 + rng.int(4096);
      sizes.push(size);
      p.a.endpoint.sendAt(i * 0.1, p.b.addr, numbered(i, size));
    }
    p.net.runFor(5000);
    const s = p.net.link(p.a, p.b).stats;
    assert.ok(s.corrupted > 1300 && s.corrupted < 1700, `corrupted ${s.corrupted}`);
    assert.equal(s.caughtByChecksum, s.corrupted);
    assert.equal(s.checksumMisses, 0);
    assert.equal(s.delivered, n - s.corrupted);
    for (const { packet } of p.b.endpoint.arrivals) {
      const i = seqOf(packet);
      assert.deepEqual(new Uint8Array(packet.payload), numbered(i, sizes[i]));
    }
  });

  test('a checksum miss would be counted and still delivered', () => {
    // Flipping a bit and flipping it back is invisible to any checksum; the link reports it.
    const p = pair(1, { latencyMs: 1 });
    const link = p.net.link(p.a, p.b);
    const bytes = encodePacket(p.a.endpoint.packet(p.b.addr, numbered(1)));
    const [copy] = link.transmit(bytes, 0).copies;
    assert.ok(copy !== undefined);
    const forged = { ...copy, corrupted: true };
    link.recordDecoded(forged, decodePacket(forged.bytes).ok);
    assert.equal(link.stats.checksumMisses, 1);
    assert.equal(link.stats.delivered, 1);
  });

  test('partition drops packets sent and in flight; heal restores delivery', () => {
    const p = pair(15, { latencyMs: 10 });
    sendSeries(p, 300, 1);
    p.net.at(100, () => p.net.partition(p.a, p.b));
    p.net.at(200, () => p.net.heal(p.a, p.b));
    p.net.runFor(1000);
    const got = p.b.endpoint.arrivals.map((x) => seqOf(x.packet));
    // Sent before 90: arrived before the partition. Sent 90..199: in flight at 100 or sent while partitioned.
    const expected = [...Array.from({ length: 90 }, (_, i) => i), ...Array.from({ length: 100 }, (_, i) => 200 + i)];
    assert.deepEqual(got, expected);
    const s = p.net.link(p.a, p.b).stats;
    assert.equal(s.partitionDrops, 110);
    assert.equal(s.delivered, 190);
    assert.ok(!p.net.link(p.a, p.b).isPartitioned);
  });

  test('one direction can be partitioned alone', () => {
    const p = pair(16, { latencyMs: 5 }, { latencyMs: 5 }, true);
    p.net.link(p.b, p.a).partition(p.net.now);
    p.a.endpoint.send(p.b.addr, numbered(1), ECHO_PORT);
    p.net.runFor(100);
    assert.equal(p.b.endpoint.arrivals.length, 1);
    assert.equal(p.a.endpoint.arrivals.length, 0);
  });
});

describe('network', () => {
  test('endpoint timeouts fire at their deadline', () => {
    const p = pair(1, { latencyMs: 10 });
    p.a.endpoint.sendAt(123.5, p.b.addr, numbered(1));
    p.a.endpoint.sendAt(50, p.b.addr, numbered(2));
    p.net.runFor(1000);
    assert.deepEqual(
      p.b.endpoint.arrivals.map((x) => [seqOf(x.packet), x.at]),
      [
        [2, 60],
        [1, 133.5],
      ],
    );
  });

  test('events reach handlers, which may call back into endpoints', () => {
    const p = pair(1, { latencyMs: 3 });
    const seen: [number, EndpointEvent['type']][] = [];
    p.b.on((e) => {
      seen.push([p.net.now, e.type]);
      if (e.type === 'datagram' && e.data[3] === 1) p.b.endpoint.send(p.a.addr, numbered(2));
    });
    p.a.endpoint.send(p.b.addr, numbered(1));
    p.net.runFor(100);
    assert.deepEqual(seen, [[3, 'datagram']]);
    assert.deepEqual(
      p.a.endpoint.arrivals.map((x) => x.at),
      [6],
    );
  });

  test('handlers can be removed', () => {
    const p = pair(1, { latencyMs: 1 });
    let calls = 0;
    const off = p.b.on(() => calls++);
    p.a.endpoint.send(p.b.addr, numbered(1));
    p.net.runFor(10);
    off();
    p.a.endpoint.send(p.b.addr, numbered(2));
    p.net.runFor(10);
    assert.equal(calls, 1);
  });

  test('runUntil stops when the predicate holds or at the deadline', () => {
    const p = pair(1, { latencyMs: 10 });
    p.a.endpoint.send(p.b.addr, numbered(1));
    assert.equal(
      p.net.runUntil(() => p.b.endpoint.arrivals.length > 0, 1000),
      true,
    );
    assert.equal(p.net.now, 10);
    assert.equal(
      p.net.runUntil(() => false, 500),
      false,
    );
    assert.equal(p.net.now, 510);
  });

  test('at() and after() run callbacks at their virtual time', () => {
    const net = new SimNetwork({ seed: 1 });
    const log: number[] = [];
    net.at(30, () => log.push(net.now));
    net.after(10, () => {
      log.push(net.now);
      net.after(5, () => log.push(net.now));
    });
    net.runFor(100);
    assert.deepEqual(log, [10, 15, 30]);
  });

  test('packets to unknown addresses are counted as unroutable', () => {
    const p = pair(1, { latencyMs: 1 });
    p.a.endpoint.send(makeAddr(9, 9), numbered(1));
    p.a.endpoint.send(p.a.addr, numbered(2));
    p.net.runFor(10);
    assert.equal(p.net.unroutable, 2);
  });

  test('a deadline that never moves is reported as a livelock', () => {
    const net = new SimNetwork({ seed: 1, stallSteps: 1000 });
    const stuck: SimEndpoint = {
      handlePacket: () => undefined,
      handleTimeout: () => undefined,
      pollTransmit: () => undefined,
      pollEvent: () => undefined,
      nextTimeout: () => 5,
    };
    net.addNode('stuck', makeAddr(1, 1), stuck);
    assert.throws(
      () => net.runFor(100),
      (e: unknown) => e instanceof SimError && e.code === 'livelock' && /t=5ms/.test(e.message),
    );
  });

  test('a zero-latency ping-pong is reported as a livelock', () => {
    const { net, a, b } = pair(1, { latencyMs: 0 }, { latencyMs: 0 }, true);
    // Port 7 to port 7: every echo is echoed again, without the clock moving.
    a.endpoint.send(b.addr, numbered(1), ECHO_PORT, ECHO_PORT);
    assert.throws(
      () => net.runFor(10),
      (e: unknown) => e instanceof SimError && e.code === 'livelock',
    );
    assert.equal(net.now, 0);
  });

  test('the step limit stops a run that never ends', () => {
    const net = new SimNetwork({ seed: 1, maxSteps: 200 });
    const a = net.addNode('a', makeAddr(1, 1), new TestNode(makeAddr(1, 1), true));
    const b = net.addNode('b', makeAddr(1, 2), new TestNode(makeAddr(1, 2), true));
    net.connect(a, b, { latencyMs: 1 });
    a.endpoint.send(b.addr, numbered(1), ECHO_PORT, ECHO_PORT);
    assert.throws(
      () => net.runFor(1_000_000),
      (e: unknown) => e instanceof SimError && e.code === 'max_steps',
    );
    assert.ok(net.steps >= 200 && net.now < 300);
  });
});

describe('determinism', () => {
  function scenario(seed: number): string[] {
    const trace: string[] = [];
    const net = new SimNetwork({ seed, trace: (e) => trace.push(formatTrace(e)) });
    const a = net.addNode('a', makeAddr(1, 1), new TestNode(makeAddr(1, 1), true));
    const b = net.addNode('b', makeAddr(1, 2), new TestNode(makeAddr(1, 2), true));
    const impaired: Partial<LinkConfig> = {
      latencyMs: 7,
      jitterMs: 2,
      bandwidthBytesPerSec: 1_000_000,
      queueLimitBytes: 20_000,
      loss: 0.05,
      reorder: 0.05,
      duplicate: 0.05,
      corrupt: 0.05,
    };
    net.connect(a, b, impaired, { ...impaired, loss: 0.1 });
    for (let i = 0; i < 500; i++) a.endpoint.sendAt(i * 0.5, b.addr, numbered(i, 100 + ((i * 37) % 1500)), ECHO_PORT);
    net.at(100, () => net.partition(a, b));
    net.at(120, () => net.heal(a, b));
    net.runFor(2000);
    return trace;
  }

  test('the same seed gives an identical trace', () => {
    const first = scenario(2024);
    assert.ok(first.length > 1000);
    assert.deepEqual(scenario(2024), first);
  });

  test('a different seed gives a different trace', () => {
    assert.notDeepEqual(scenario(2025), scenario(2024));
  });
});
