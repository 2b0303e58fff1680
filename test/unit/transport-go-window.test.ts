import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Flag, Proto, type Packet } from '../../src/protocol/packet.js';
import { decodeSack } from '../../src/protocol/sack.js';
import { GoLink } from './go-sender-model.js';
import { A_ADDR, B_ADDR, Pair } from './transport-harness.js';

const UNIT = 4096;
const CAPACITY = 512 * UNIT;
/** What a receiver may hold beyond its buffer for a peer that reads window 0 as "no limit". */
const SLACK = 2 * UNIT;

const pattern = (n: number, salt = 0): Buffer => {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 131 + salt + (i >> 12)) & 0xff;
  return b;
};

/** Window fields the endpoint sent on packets other than FIN and RST. */
function windows(wire: { packet: Packet }[]): number[] {
  return wire
    .filter((w) => w.packet.protocol === Proto.Stream && !(w.packet.flags & (Flag.FIN | Flag.RST)))
    .map((w) => w.packet.window);
}

/** Tracks the most the endpoint buffered for one connection (in order plus out of order). */
function trackBuffered(link: GoLink, connId: number): { max: number } {
  const seen = { max: 0 };
  link.observe = () => {
    const buffered = link.ep.readableBytes(connId) + (link.ep.connection(connId)?.stats.oooBytes ?? 0);
    if (buffered > seen.max) seen.max = buffered;
  };
  return seen;
}

describe('transport: a reference sender, which reads window 0 as "no limit"', () => {
  it('is held inside the buffer while the application does not read (150 s), and resumes within one RTT', () => {
    const data = pattern(10 * 1024 * 1024, 1);
    const link = new GoLink(5, data);
    const cb = link.connect();
    const buffered = trackBuffered(link, cb);
    const got: Buffer[] = [];
    let total = 0;
    for (let guard = 0; total < 3 * 1024 * 1024 && guard < 10_000; guard++) {
      link.run(10);
      const chunk = link.read(cb);
      got.push(chunk);
      total += chunk.length;
    }
    // The application stops reading: longer than a reference sender's 8 transmissions of a
    // segment, its keepalive interval and its idle timeout.
    link.run(150_000);
    assert.equal(link.go.ended, undefined, 'the sender neither reset nor closed the connection');
    assert.equal(link.go.state, 'ESTABLISHED');
    assert.equal(link.go.counters.retransmits, 0, 'nothing was dropped, nothing retransmitted');
    assert.ok(buffered.max <= CAPACITY + SLACK, `buffered ${buffered.max} bytes, more than capacity + ${SLACK}`);
    assert.ok(
      link.go.bytesInFlight > 0 && link.go.bytesInFlight < 2 * UNIT,
      'the sender waits with the held data in flight',
    );
    assert.ok(!windows(link.wire).includes(0), 'window 0 was never advertised');

    const resumeAt = link.now;
    const arrivedBefore = link.arrivals.length;
    for (let guard = 0; total < data.length && guard < 10_000; guard++) {
      const chunk = link.read(cb);
      got.push(chunk);
      total += chunk.length;
      if (total < data.length) link.run(10);
    }
    const next = link.arrivals[arrivedBefore];
    assert.ok(next, 'data arrived after the application read again');
    assert.ok(
      next.at - resumeAt <= 2 * link.delay,
      `the next segment came ${next.at - resumeAt} ms after the read (RTT ${2 * link.delay} ms)`,
    );
    assert.ok(Buffer.concat(got).equals(data), 'byte-exact');
    assert.equal(link.go.counters.retransmits, 0);
    assert.ok(buffered.max <= CAPACITY + SLACK);
    assert.ok(!windows(link.wire).includes(0));
  });

  it('keeps pace with a slow reader (an echo held back by its own writes) without a drop or a stall', () => {
    const data = pattern(10 * 1024 * 1024, 2);
    const link = new GoLink(5, data);
    const cb = link.connect();
    const buffered = trackBuffered(link, cb);
    const start = link.now;
    const got: Buffer[] = [];
    let total = 0;
    // 128 KiB every 50 ms: 2.5 MiB/s, well below what the link carries.
    for (let guard = 0; total < data.length && guard < 100_000; guard++) {
      link.run(50);
      const chunk = link.read(cb, 128 * 1024);
      got.push(chunk);
      total += chunk.length;
    }
    assert.ok(Buffer.concat(got).equals(data), 'byte-exact');
    const reads = Math.ceil(data.length / (128 * 1024));
    assert.ok(
      link.now - start <= reads * 50 + 100,
      `took ${link.now - start} ms; the reader alone needs ${reads * 50} ms`,
    );
    assert.equal(link.go.ended, undefined);
    assert.equal(link.go.counters.retransmits, 0, 'nothing was dropped');
    assert.ok(buffered.max <= CAPACITY + SLACK, `buffered ${buffered.max} bytes`);
    assert.ok(!windows(link.wire).includes(0));
  });

  it('after a drop beyond the window, reopens it with three bare duplicate ACKs: the sender retransmits at once', () => {
    const capacity = 16 * UNIT;
    const data = pattern(1024 * 1024, 3);
    const link = new GoLink(5, data, { connection: { recvBufferBytes: capacity } });
    const cb = link.connect();
    const buffered = trackBuffered(link, cb);
    link.run(2_000);
    const readable = link.ep.readableBytes(cb);
    assert.ok(
      readable > capacity && readable <= capacity + SLACK,
      `holding ${readable - capacity} bytes beyond the buffer`,
    );
    // A sender misled into ignoring the window (as reordered ACKs could) sends one segment more
    // than the slack takes; it goes at its next window probe.
    const fits = (capacity + SLACK - readable) / UNIT;
    link.go.overshoot = fits + 1;
    const sentBefore = link.go.counters.segments;
    link.run(40_000, () => link.go.counters.segments >= sentBefore + fits + 1);
    link.run(100);
    assert.equal(link.go.counters.segments, sentBefore + fits + 1);
    assert.ok(buffered.max <= capacity + SLACK, 'the extra segment was dropped');
    const lost = link.arrivals.at(-1);
    assert.ok(lost);

    const resumeAt = link.now;
    const wireBefore = link.wire.length;
    const got = [link.read(cb)];
    const update = link.wire.slice(wireBefore).map((w) => w.packet);
    assert.equal(update.length, 4, 'the window update and three duplicates');
    assert.ok(update.every((p) => p.flags === Flag.ACK && p.ack === update[0]?.ack && p.window > 0));
    assert.ok(
      update.slice(1).every((p) => p.payload.length === 0),
      'bare: a SACK payload would not count as a duplicate',
    );
    link.run(2 * link.delay);
    const again = link.arrivals.find((a) => a.at >= resumeAt && a.seq === lost.seq);
    assert.ok(again, `the dropped segment came back within one RTT (${2 * link.delay} ms)`);
    assert.equal(link.go.counters.fastRetransmits, 1);
    let total = got[0]?.length ?? 0;
    for (let guard = 0; total < data.length && guard < 10_000; guard++) {
      link.run(10);
      const chunk = link.read(cb);
      got.push(chunk);
      total += chunk.length;
    }
    assert.ok(Buffer.concat(got).equals(data), 'byte-exact');
    assert.equal(link.go.ended, undefined);
  });

  it('SACKs the held data (so it is not retransmitted) and never shows the sender window 0', () => {
    const capacity = 8 * UNIT;
    const link = new GoLink(5, pattern(256 * 1024, 4), { connection: { recvBufferBytes: capacity } });
    const cb = link.connect();
    link.run(5_000);
    const readable = link.ep.readableBytes(cb);
    assert.ok(readable > capacity);
    const acks = link.wire.map((w) => w.packet).filter((p) => p.flags === Flag.ACK);
    const last = acks.findLast((p) => decodeSack(p.payload) !== null);
    assert.ok(last, 'a SACK was sent');
    const blocks = decodeSack(last.payload) ?? [];
    const rcvNxt = (1 + readable) >>> 0;
    assert.deepEqual(blocks[0], { left: last.ack, right: rcvNxt }, 'the held data, from the ACK point up');
    assert.equal(last.window, 1);
    assert.ok(last.ack - 1 <= capacity, 'nothing beyond the buffer is acknowledged');
    assert.equal(link.go.counters.retransmits, 0);
  });
});

describe('transport: zero windows between pilot-ts peers', () => {
  it('a receiver that takes its peer for the reference holds data; our sender waits without giving up, and the advert turns it into a zero window', () => {
    const pair = new Pair(5, { connection: { recvBufferBytes: 8 * UNIT } });
    const { ca, cb } = pair.connect();
    const data = pattern(200_000, 5);
    pair.a.write(ca, data, pair.now);
    // Far longer than twelve backed-off retransmission timeouts.
    pair.run(120_000);
    assert.equal(pair.eventsOf('a', 'closed').length, 0, 'the sender did not give up');
    assert.ok(pair.b.readableBytes(cb) > 8 * UNIT, 'data held beyond the buffer');
    assert.ok(pair.b.readableBytes(cb) <= 8 * UNIT + SLACK);
    const bWindows = pair.wire
      .filter((w) => w.from === 'b' && w.packet.protocol === Proto.Stream)
      .map((w) => w.packet.window);
    assert.ok(!bWindows.includes(0));
    const stA = pair.a.connection(ca)?.stats;
    assert.equal(stA?.cwnd, 10 * UNIT, 'a held segment is not taken for congestion');

    // The capability advert arrives: held data is acknowledged and the window shows 0.
    pair.b.setPeerHonoursZeroWindow(A_ADDR.node, true);
    assert.equal(pair.b.peerHonoursZeroWindow(A_ADDR.node), true);
    pair.run(5_000);
    assert.equal(pair.a.connection(ca)?.stats.peerWindow, 0);
    assert.ok(
      (pair.a.connection(ca)?.stats.inFlight ?? 0) <= 1,
      'everything received was acknowledged (one byte may be a window probe)',
    );
    const got: Buffer[] = [];
    for (let i = 0; i < 400 && Buffer.concat(got).length < data.length; i++) {
      got.push(pair.readAll('b', cb));
      pair.run(50);
    }
    assert.deepEqual(Buffer.concat(got), data);
    // New connections with the node start that way; forgetting it goes back to the default.
    const second = pair.connect(1001);
    assert.equal(pair.b.peerHonoursZeroWindow(A_ADDR.node), true);
    pair.b.setPeerHonoursZeroWindow(A_ADDR.node, false);
    assert.equal(pair.b.peerHonoursZeroWindow(A_ADDR.node), false);
    assert.equal(pair.b.peerHonoursZeroWindow(B_ADDR.node), false);
    assert.ok(second.cb > 0);
  });

  it('advertises window 0 to a proven pilot-ts peer, and at least 1 to any other', () => {
    for (const honours of [true, false]) {
      const pair = new Pair(5, { connection: { recvBufferBytes: 4 * UNIT } });
      if (honours) pair.b.setPeerHonoursZeroWindow(A_ADDR.node, true);
      const { ca, cb } = pair.connect();
      pair.a.write(ca, pattern(100_000, 6), pair.now);
      pair.run(3_000);
      const last = pair.wire.filter((w) => w.from === 'b' && w.packet.flags === Flag.ACK).at(-1)?.packet;
      assert.equal(last?.window, honours ? 0 : 1);
      if (honours) assert.equal(pair.b.readableBytes(cb), 4 * UNIT);
      else assert.ok(pair.b.readableBytes(cb) > 4 * UNIT, 'the slack is in use');
    }
  });
});
