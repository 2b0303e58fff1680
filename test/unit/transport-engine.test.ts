import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Flag, Proto, makePacket, type Packet } from '../../src/protocol/packet.js';
import { looksLikeSack } from '../../src/protocol/sack.js';
import { PortInUseError } from '../../src/transport/port-table.js';
import { TransportError } from '../../src/transport/endpoint.js';
import type { ConnectionStats } from '../../src/transport/types.js';
import { A_ADDR, B_ADDR, Pair } from './transport-harness.js';

const pattern = (n: number, salt = 0): Buffer => {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + salt + (i >> 8)) & 0xff;
  return b;
};

function streamPackets(pair: Pair, from: 'a' | 'b'): Packet[] {
  return pair.wire.filter((w) => w.from === from && w.packet.protocol === Proto.Stream).map((w) => w.packet);
}

/** Writes all of data, respecting the send buffer, running the pair in between. */
function writeAll(pair: Pair, side: 'a' | 'b', connId: number, data: Buffer, step = 50): void {
  let off = 0;
  for (let guard = 0; off < data.length && guard < 100_000; guard++) {
    off += pair.endpoint(side).write(connId, data.subarray(off), pair.now);
    if (off < data.length) pair.run(step);
  }
  assert.equal(off, data.length, 'could not write everything');
}

describe('transport: opening', () => {
  it('uses the reference handshake: SYN seq 0 win 512, SYN-ACK seq 0 ack 1, data from seq 1', () => {
    const pair = new Pair();
    const { ca } = pair.connect(1000);
    pair.endpoint('a').write(ca, Buffer.from('hello'), pair.now);
    pair.run(100);
    const [syn, data, ...rest] = streamPackets(pair, 'a');
    const [synAck] = streamPackets(pair, 'b');
    assert.deepEqual(
      [syn?.flags, syn?.seq, syn?.ack, syn?.window, syn?.srcPort, syn?.dstPort],
      [Flag.SYN, 0, 0, 512, 49152, 1000],
    );
    assert.deepEqual([synAck?.flags, synAck?.seq, synAck?.ack, synAck?.window], [Flag.SYN | Flag.ACK, 0, 1, 512]);
    // The handshake's last ACK rides on the first data segment.
    assert.deepEqual(
      [data?.flags, data?.seq, data?.ack, Buffer.from(data?.payload ?? []).toString()],
      [Flag.ACK, 1, 1, 'hello'],
    );
    assert.equal(rest.filter((p) => p.payload.length === 0 && p.ack === 1).length, 0, 'no separate handshake ACK');
  });

  it('sends the handshake ACK on its own after the delayed-ACK time when the dialer writes nothing', () => {
    const pair = new Pair();
    pair.connect(1000);
    assert.equal(streamPackets(pair, 'a').length, 1, 'only the SYN so far');
    pair.run(100);
    const [, ack] = streamPackets(pair, 'a');
    assert.deepEqual([ack?.flags, ack?.seq, ack?.ack, ack?.payload.length], [Flag.ACK, 1, 1, 0]);
  });

  it('gives the responder its first round-trip sample from the SYN-ACK, unless the SYN-ACK went twice', () => {
    const pair = new Pair(5);
    const { ca, cb } = pair.connect(1000);
    assert.equal(pair.b.connection(cb)?.stats.rtoMs, 1000, 'no sample before the dialer answers');
    pair.a.write(ca, Buffer.from('request'), pair.now);
    pair.run(1);
    pair.run(10);
    const st = pair.b.connection(cb)?.stats;
    assert.equal(st?.srttMs, 10, 'one round trip of the 5 ms wire');
    assert.equal(st?.rtoMs, 200, 'the floor, not the 1 s initial RTO');

    const twice = new Pair(5);
    let synAcks = 0;
    twice.filter = (from, p) => (from === 'b' && p.flags === (Flag.SYN | Flag.ACK) && synAcks++ === 0 ? null : p);
    const again = twice.connect(1000);
    twice.a.write(again.ca, Buffer.from('request'), twice.now);
    twice.run(100);
    assert.ok(synAcks >= 2);
    assert.equal(twice.b.connection(again.cb)?.stats.srttMs, 0, 'ambiguous: no sample (Karn)');
  });

  it('refuses a dial to a port nobody listens on with RST', () => {
    const pair = new Pair();
    const ca = pair.a.dial({ addr: B_ADDR, port: 4242 }, 0);
    pair.run(1000);
    assert.deepEqual(pair.eventsOf('a', 'closed'), [
      { type: 'closed', connId: ca, reason: 'refused', cause: 'no_listener' },
    ]);
    assert.equal(pair.b.refusals.no_listener, 1);
    assert.equal(pair.a.connections().length, 0);
  });

  it('retransmits a lost SYN and answers a duplicate SYN with the same SYN-ACK, accepting once', () => {
    const pair = new Pair();
    pair.b.listen(7);
    let dropped = 0;
    pair.filter = (from, p) => (from === 'a' && p.flags === Flag.SYN && dropped++ === 0 ? null : p);
    pair.a.dial({ addr: B_ADDR, port: 7 }, 0);
    pair.run(3000);
    assert.equal(pair.eventsOf('a', 'connected').length, 1);
    assert.ok(pair.eventsOf('a', 'connected').length === 1 && pair.now >= 1000);
    const pair2 = new Pair();
    pair2.b.listen(7);
    let synAcks = 0;
    pair2.filter = (from, p) => (from === 'b' && p.flags === (Flag.SYN | Flag.ACK) && synAcks++ === 0 ? null : p);
    pair2.a.dial({ addr: B_ADDR, port: 7 }, 0);
    pair2.run(3000);
    assert.equal(pair2.eventsOf('b', 'accepted').length, 1);
    assert.equal(pair2.eventsOf('a', 'connected').length, 1);
  });

  it('gives up a dial that is never answered', () => {
    const pair = new Pair();
    pair.filter = (from, p) => (from === 'a' ? null : p);
    const ca = pair.a.dial({ addr: B_ADDR, port: 1 }, 0);
    pair.run(120_000);
    assert.deepEqual(pair.eventsOf('a', 'closed'), [{ type: 'closed', connId: ca, reason: 'dial_timeout' }]);
    assert.equal(pair.wire.filter((w) => w.packet.flags === Flag.SYN).length, 0);
  });
});

describe('transport: closing', () => {
  it('sends FIN only after all data is acknowledged, half-closes, and never answers FIN|ACK in TIME_WAIT', () => {
    const pair = new Pair();
    const { ca, cb } = pair.connect();
    const data = pattern(50_000);
    writeAll(pair, 'a', ca, data);
    pair.a.close(ca, pair.now);
    pair.run(500);
    assert.deepEqual(pair.readAll('b', cb), data);
    assert.equal(pair.eventsOf('b', 'end').length, 1);
    const fin = streamPackets(pair, 'a').find((p) => p.flags & Flag.FIN);
    assert.ok(fin);
    assert.deepEqual([fin.flags, fin.seq, fin.ack, fin.window], [Flag.FIN, 1 + data.length, 0, 0]);
    // b can still send after a's FIN (half-close), then closes.
    pair.b.write(cb, Buffer.from('late reply'), pair.now);
    pair.run(200);
    assert.equal(pair.readAll('a', ca).toString(), 'late reply');
    pair.b.close(cb, pair.now);
    pair.run(500);
    assert.deepEqual(
      pair.eventsOf('a', 'closed').map((e) => e.reason),
      ['closed'],
    );
    assert.deepEqual(
      pair.eventsOf('b', 'closed').map((e) => e.reason),
      ['closed'],
    );
    const finAck = streamPackets(pair, 'a').filter((p) => p.flags === (Flag.FIN | Flag.ACK));
    assert.equal(finAck.length, 1, 'a answers b FIN with one FIN|ACK');
    // Inject a Go-style FIN|ACK echo into b (TIME_WAIT): b must stay silent.
    const before = pair.wire.length;
    pair.b.handlePacket(makePacket({ ...finAck[0]!, flags: Flag.FIN | Flag.ACK }), pair.now);
    pair.drain();
    assert.equal(pair.wire.length, before);
    pair.run(11_000);
    assert.equal(pair.a.connections().length, 0);
    assert.equal(pair.b.connections().length, 0);
  });

  it('answers a reference-style FIN (peer closes completely) and retransmits its own FIN until answered', () => {
    const pair = new Pair();
    const { ca, cb } = pair.connect();
    let finsDropped = 0;
    pair.filter = (from, p) => (from === 'a' && p.flags === Flag.FIN && finsDropped++ < 2 ? null : p);
    pair.a.close(ca, pair.now);
    pair.run(5000);
    assert.equal(finsDropped, 3);
    assert.equal(pair.eventsOf('b', 'end').length, 1);
    pair.b.close(cb, pair.now);
    pair.run(1000);
    assert.equal(pair.eventsOf('a', 'closed')[0]?.reason, 'closed');
    assert.equal(pair.eventsOf('b', 'closed')[0]?.reason, 'closed');
  });

  it('keeps closed connections in TIME_WAIT apart: listed, not counted against limits, reaped on time, tuple reusable', () => {
    const pair = new Pair(2, { maxConnsTotal: 10 });
    const opened: { ca: number; cb: number }[] = [];
    for (let i = 0; i < 30; i++) {
      const c = pair.connect();
      pair.a.close(c.ca, pair.now);
      pair.b.close(c.cb, pair.now);
      pair.run(50);
      opened.push(c);
    }
    // 30 > maxConnsTotal: lingering connections do not count as live ones.
    assert.equal(pair.eventsOf('b', 'accepted').length, 30);
    const states = pair.a.connections().map((c) => c.state);
    assert.ok(
      states.length >= 29 && states.every((st) => st === 'TIME_WAIT'),
      `a lists its lingering connections: ${states.join(',')}`,
    );
    const next = pair.a.nextTimeout();
    assert.ok(next !== undefined && next <= pair.now + 10_000, 'the oldest TIME_WAIT deadline is a timer');
    const lingeringPorts = new Set(pair.a.connections().map((c) => c.localPort));
    const fresh = pair.a.dial({ addr: B_ADDR, port: 1000 }, pair.now);
    assert.ok(!lingeringPorts.has(pair.a.localPortOf(fresh) ?? 0), 'a lingering connection keeps its port');
    pair.a.abort(fresh, pair.now);
    pair.run(11_000);
    assert.equal(pair.a.connections().length, 0, 'all reaped after the linger time');
    assert.equal(pair.b.connections().length, 0);
    assert.equal(pair.a.nextTimeout(), undefined);
    // A new connection after all that works as before.
    const again = pair.connect();
    pair.a.write(again.ca, Buffer.from('still fine'), pair.now);
    pair.run(200);
    assert.equal(pair.readAll('b', again.cb).toString(), 'still fine');
  });

  it('reuses the port of the longest-lingering TIME_WAIT connection once every ephemeral port is held', () => {
    const pair = new Pair(2, { ephemeralPorts: [49152, 49155] });
    for (let i = 0; i < 4; i++) {
      const c = pair.connect();
      pair.a.close(c.ca, pair.now);
      pair.b.close(c.cb, pair.now);
      pair.run(50);
    }
    assert.deepEqual(
      pair.a.connections().map((c) => [c.localPort, c.state]),
      [49152, 49153, 49154, 49155].map((p) => [p, 'TIME_WAIT']),
    );
    // Lingering for less than a second: not taken.
    assert.throws(
      () => pair.a.dial({ addr: B_ADDR, port: 1000 }, pair.now),
      (err: unknown) => err instanceof TransportError && err.code === 'no_ports',
    );
    pair.run(1_000);
    const { ca, cb } = pair.connect();
    assert.equal(pair.a.localPortOf(ca), 49152, 'the oldest lingering port');
    assert.equal(pair.a.connections().length, 4, 'its TIME_WAIT connection ended, the three others linger on');
    pair.a.write(ca, Buffer.from('on a reused port'), pair.now);
    pair.run(200);
    assert.equal(pair.readAll('b', cb).toString(), 'on a reused port');
  });

  it('finds a free ephemeral port beyond the ones it looks at first when no TIME_WAIT port can be given up', () => {
    const pair = new Pair(2, { ephemeralPorts: [49152, 49152 + 69] });
    const conns = Array.from({ length: 70 }, () => pair.connect());
    assert.equal(pair.a.localPortOf(conns[69]?.ca ?? -1), 49152 + 69, 'every port taken, in order');
    pair.a.abort(conns[68]?.ca ?? -1, pair.now);
    pair.run(50);
    // The next ports in sequence (49152…) are all held by open connections, and none lingers.
    const { ca } = pair.connect();
    assert.equal(pair.a.localPortOf(ca), 49152 + 68, 'the one free port, found past the first 64 looked at');
  });

  it('resets on RST and on abort', () => {
    const pair = new Pair();
    const { ca, cb } = pair.connect();
    pair.a.abort(ca, pair.now);
    pair.run(100);
    assert.equal(pair.eventsOf('a', 'closed')[0]?.reason, 'aborted');
    assert.deepEqual(pair.eventsOf('b', 'closed'), [{ type: 'closed', connId: cb, reason: 'reset' }]);
  });

  it('answers data for an unknown connection with RST so a restarted peer is noticed', () => {
    const pair = new Pair();
    const { ca } = pair.connect();
    // b "restarts": a fresh endpoint with the same address.
    pair.restart('b');
    pair.a.write(ca, Buffer.from('anyone there?'), pair.now);
    pair.run(2000);
    assert.equal(pair.eventsOf('a', 'closed')[0]?.reason, 'reset');
  });
});

describe('transport: data path', () => {
  it('never starts a segment with bytes a Go receiver would take for SACK', () => {
    const pair = new Pair();
    const { ca, cb } = pair.connect();
    const data = pattern(3 * 4096);
    const sackish = Buffer.concat([Buffer.from('SACK'), Buffer.from([2]), Buffer.alloc(16, 7)]);
    sackish.copy(data, 4096);
    sackish.copy(data, 0);
    writeAll(pair, 'a', ca, data);
    pair.run(500);
    assert.deepEqual(pair.readAll('b', cb), data);
    const segs = streamPackets(pair, 'a').filter((p) => p.payload.length > 0);
    assert.ok(segs.every((p) => !looksLikeSack(p.payload)));
  });

  it('keeps every out-of-order segment of a full window: one loss costs one retransmission', () => {
    const pair = new Pair(20);
    const { ca, cb } = pair.connect();
    let dropped = false;
    pair.filter = (from, p) => {
      if (from === 'a' && !dropped && p.payload.length > 0 && p.seq === 1 + 200 * 4096) {
        dropped = true;
        return null;
      }
      return p;
    };
    const data = pattern(4 * 1024 * 1024, 3);
    const received: Buffer[] = [];
    let off = 0;
    for (let guard = 0; guard < 10_000 && Buffer.concat(received).length < data.length; guard++) {
      off += pair.a.write(ca, data.subarray(off), pair.now);
      pair.run(10);
      received.push(pair.readAll('b', cb));
    }
    assert.deepEqual(Buffer.concat(received), data);
    const st = pair.a.connection(ca)?.stats;
    assert.ok(dropped);
    assert.equal(st?.retransmits, 1);
    assert.ok((st?.sackBlocksRecv ?? 0) > 0);
  });

  it('recovers a lost tail with a probe after two round trips, not the 200 ms RTO', () => {
    // The last two segments of a burst are lost: nothing after them draws a SACK or a duplicate ACK.
    const lossAt = (dropTail: boolean): { doneAt: number; stats: ConnectionStats | undefined } => {
      const pair = new Pair(5);
      const { ca, cb } = pair.connect();
      writeAll(pair, 'a', ca, pattern(64 * 1024, 1));
      pair.run(200);
      assert.equal(pair.readAll('b', cb).length, 64 * 1024);
      const tail = new Set([1 + 64 * 1024 + 6 * 4096, 1 + 64 * 1024 + 7 * 4096]);
      const dropped = new Set<number>();
      pair.filter = (from, p) => {
        if (dropTail && from === 'a' && p.payload.length > 0 && tail.has(p.seq) && !dropped.has(p.seq)) {
          dropped.add(p.seq);
          return null;
        }
        return p;
      };
      const start = pair.now;
      writeAll(pair, 'a', ca, pattern(8 * 4096, 2));
      let got = 0;
      pair.runUntil(start + 1000, () => {
        got += pair.readAll('b', cb).length;
        return got === 8 * 4096;
      });
      assert.equal(got, 8 * 4096, 'the burst arrived whole');
      if (dropTail) assert.equal(dropped.size, 2);
      return { doneAt: pair.now - start, stats: pair.a.connection(ca)?.stats };
    };
    const clean = lossAt(false);
    const lossy = lossAt(true);
    assert.ok(clean.doneAt < 20, `without loss: ${clean.doneAt} ms`);
    // RTT 10 ms: a probe after max(2·SRTT, 10 ms), then one round trip for the probe and one for the
    // retransmission the SACK of the probe triggers. The RTO alone would take 200 ms.
    assert.ok(lossy.doneAt < 80, `tail lost: ${lossy.doneAt} ms`);
    assert.equal(lossy.stats?.timeouts, 0, 'no RTO fired');
    assert.equal(lossy.stats?.retransmits, 2, 'the probe and the one segment it revealed');
  });

  it('offers a window of 128 large segments once the path carries them, and never takes it back', () => {
    const plain = new Pair(2);
    const p = plain.connect();
    assert.equal(plain.b.connection(p.cb)?.stats.recvWindow, 512 * 4096, 'base segments: the configured 2 MiB');
    const pair = new Pair(2);
    pair.b.setPeerSegmentSize(A_ADDR.node, 61_440);
    const { cb } = pair.connect();
    assert.equal(pair.b.connection(cb)?.stats.recvWindow, 128 * 61_440, 'a new connection on a large-segment path');
    const other = pair.connect(1001);
    assert.equal(pair.b.connection(other.cb)?.stats.recvWindow, 128 * 61_440);
    pair.b.setPeerSegmentSize(A_ADDR.node, 0);
    assert.equal(pair.b.connection(cb)?.stats.recvWindow, 128 * 61_440, 'back to base segments: the window stays');
    const grown = new Pair(2);
    const g = grown.connect();
    grown.b.setPeerSegmentSize(A_ADDR.node, 61_440);
    assert.equal(
      grown.b.connection(g.cb)?.stats.recvWindow,
      128 * 61_440,
      'an open connection grows with its segments',
    );
  });

  it('switches a peer to larger segments mid-stream, byte-exact, and back to the default', () => {
    const pair = new Pair(2);
    const { ca, cb } = pair.connect();
    const data = pattern(2 * 1024 * 1024, 5);
    const half = data.length / 2;
    writeAll(pair, 'a', ca, data.subarray(0, 4 * 4096));
    pair.a.setPeerSegmentSize(B_ADDR.node, 61_440);
    assert.equal(pair.a.connection(ca)?.stats.mss, 61_440);
    writeAll(pair, 'a', ca, data.subarray(4 * 4096, half));
    pair.a.setPeerSegmentSize(B_ADDR.node, 0);
    writeAll(pair, 'a', ca, data.subarray(half));
    pair.run(2000);
    assert.deepEqual(pair.readAll('b', cb), data);
    const sizes = streamPackets(pair, 'a')
      .map((p) => p.payload.length)
      .filter((n) => n > 0);
    assert.ok(sizes.includes(61_440), 'large segments were sent');
    assert.ok(
      sizes.slice(-3).every((n) => n <= 4096),
      'the default again after the reset',
    );
    // New connections with the node take the size it was given.
    pair.a.setPeerSegmentSize(B_ADDR.node, 8192);
    const second = pair.connect();
    assert.equal(pair.a.connection(second.ca)?.stats.mss, 8192);
    assert.throws(() => pair.a.setPeerSegmentSize(B_ADDR.node, 70_000), RangeError);
  });

  it('sends each large write as a segment of its own (a view, no copy), and merges small writes', () => {
    const pair = new Pair(2);
    const { ca, cb } = pair.connect();
    pair.a.setPeerSegmentSize(B_ADDR.node, 61_440);
    // The first write leaves at once; the congestion window holds the next two back, queued together.
    const large = [pattern(30_000, 1), pattern(30_000, 2), pattern(30_000, 3)];
    const small = [pattern(100, 4), pattern(200, 5)];
    for (const chunk of [...large, ...small]) writeAll(pair, 'a', ca, chunk);
    pair.run(2000);
    assert.deepEqual(pair.readAll('b', cb), Buffer.concat([...large, ...small]));
    const sizes = streamPackets(pair, 'a')
      .map((p) => p.payload.length)
      .filter((n) => n > 0);
    assert.deepEqual(
      sizes,
      [30_000, 30_000, 30_000, 300],
      'queued large writes are not merged up to the MSS; small ones are',
    );
  });

  it('turns Nagle off for one connection (setNoDelay), sending what it held at once', () => {
    const pair = new Pair(20);
    const { ca, cb } = pair.connect();
    for (let i = 0; i < 3; i++) pair.a.write(ca, Buffer.from([i]), pair.now);
    pair.drain();
    const before = streamPackets(pair, 'a').filter((p) => p.payload.length > 0).length;
    pair.a.setNagle(ca, false, pair.now);
    pair.drain();
    const afterToggle = streamPackets(pair, 'a').filter((p) => p.payload.length > 0).length;
    assert.equal(afterToggle, before + 1, 'the held bytes go out at once');
    for (let i = 3; i < 6; i++) pair.a.write(ca, Buffer.from([i]), pair.now);
    pair.drain();
    assert.equal(
      streamPackets(pair, 'a').filter((p) => p.payload.length > 0).length,
      afterToggle + 3,
      'one segment per write',
    );
    pair.run(200);
    assert.deepEqual([...pair.readAll('b', cb)], [0, 1, 2, 3, 4, 5]);
  });

  it('coalesces small writes with Nagle and sends them at once without it', () => {
    for (const nagle of [true, false]) {
      const pair = new Pair(20, { connection: { nagle } });
      const { ca, cb } = pair.connect();
      for (let i = 0; i < 10; i++) pair.a.write(ca, Buffer.from([i]), pair.now);
      pair.run(200);
      assert.deepEqual([...pair.readAll('b', cb)], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      const segs = streamPackets(pair, 'a').filter((p) => p.payload.length > 0).length;
      if (nagle) assert.equal(segs, 2);
      else assert.equal(segs, 10);
    }
  });

  it('stops at a closed window, probes it, and resumes when the reader catches up (pilot-ts peers)', () => {
    const pair = new Pair(5, { connection: { recvBufferBytes: 4 * 4096, peerHonoursZeroWindow: true } });
    const { ca, cb } = pair.connect();
    const data = pattern(100_000, 9);
    pair.a.write(ca, data, pair.now);
    pair.run(5000);
    const st = pair.b.connection(cb)?.stats;
    assert.equal(pair.b.readableBytes(cb), 4 * 4096);
    assert.equal(st?.recvWindow, 0);
    assert.ok(streamPackets(pair, 'b').some((p) => p.window === 0));
    const probes = streamPackets(pair, 'a').filter((p) => p.payload.length === 1).length;
    assert.ok(probes >= 2, `expected zero-window probes, saw ${probes}`);
    const got: Buffer[] = [];
    for (let i = 0; i < 200 && Buffer.concat(got).length < data.length; i++) {
      got.push(pair.readAll('b', cb));
      pair.run(50);
    }
    assert.deepEqual(Buffer.concat(got), data);
  });

  it('survives sequence number wrap-around', () => {
    const pair = new Pair(5, { connection: { isn: 0xffff0000 } });
    const { ca, cb } = pair.connect();
    const data = pattern(600_000, 1);
    writeAll(pair, 'a', ca, data);
    pair.run(1000);
    assert.deepEqual(pair.readAll('b', cb), data);
  });

  it('fills the counters', () => {
    const pair = new Pair(10);
    const { ca, cb } = pair.connect();
    writeAll(pair, 'a', ca, pattern(200_000));
    pair.run(1000);
    pair.readAll('b', cb);
    const a = pair.a.connection(ca)?.stats;
    const b = pair.b.connection(cb)?.stats;
    assert.equal(a?.bytesSent, 200_000);
    assert.equal(b?.bytesRecv, 200_000);
    assert.ok((a?.segmentsSent ?? 0) >= 49 && (b?.segmentsRecv ?? 0) >= 49);
    assert.ok(Math.abs((a?.srttMs ?? 0) - 20) < 25);
    assert.ok((a?.cwnd ?? 0) > 40_960);
  });
});

describe('transport: timers', () => {
  it('keeps an idle connection alive with keepalives that the peer answers', () => {
    const pair = new Pair(5);
    const { ca, cb } = pair.connect();
    pair.run(300_000);
    assert.equal(pair.a.connection(ca)?.state, 'ESTABLISHED');
    assert.equal(pair.b.connection(cb)?.state, 'ESTABLISHED');
    // Whichever side's timer fires first probes; the other side's answer resets its own timer.
    const keepalives = [...streamPackets(pair, 'a'), ...streamPackets(pair, 'b')].filter(
      (p) => p.payload.length === 1 && p.seq === 0,
    );
    assert.ok(keepalives.length >= 5, `saw ${keepalives.length} keepalives`);
  });

  it('times out a connection whose peer went silent, and gives up retransmitting to it', () => {
    const pair = new Pair(5);
    const { cb } = pair.connect();
    pair.filter = (from, p) => (from === 'b' ? null : p);
    pair.run(200_000);
    assert.equal(pair.eventsOf('a', 'closed')[0]?.reason, 'idle_timeout');
    const pair2 = new Pair(5);
    const c2 = pair2.connect();
    pair2.filter = (from, p) => (from === 'b' ? null : p);
    pair2.a.write(c2.ca, pattern(10_000), pair2.now);
    pair2.run(300_000);
    assert.equal(pair2.eventsOf('a', 'closed')[0]?.reason, 'retransmit_timeout');
    assert.equal(pair2.a.connections().length, 0);
    void cb;
  });
});

describe('transport: datagrams, pings, ports, limits', () => {
  it('delivers datagrams from a fresh ephemeral port and drops empty ones', () => {
    const pair = new Pair();
    pair.a.sendDatagram({ addr: B_ADDR, port: 5000 }, Buffer.from('dg'), 0);
    pair.a.sendDatagram({ addr: B_ADDR, port: 5000 }, new Uint8Array(0), 0);
    pair.run(100);
    const dgs = pair.eventsOf('b', 'datagram');
    assert.equal(dgs.length, 1);
    assert.equal(dgs[0]?.dstPort, 5000);
    assert.ok((dgs[0]?.src.port ?? 0) >= 49152);
    assert.equal(Buffer.from(dgs[0]?.data ?? []).toString(), 'dg');
    assert.throws(() => pair.a.sendDatagram({ addr: B_ADDR, port: 1 }, new Uint8Array(70_000), 0));
  });

  it('answers a control ping on port 0 with a pong', () => {
    const pair = new Pair();
    pair.a.ping(B_ADDR, 77, Buffer.from('p'), 0, 49999);
    pair.run(100);
    const pong = pair.eventsOf('a', 'pong')[0];
    assert.equal(pong?.seq, 77);
    const wirePong = pair.wire.find((w) => w.from === 'b')?.packet;
    assert.deepEqual([wirePong?.flags, wirePong?.srcPort, wirePong?.dstPort, wirePong?.ack], [Flag.ACK, 0, 49999, 78]);
  });

  it('refuses a second bind, and enforces per-port and total limits with RST', () => {
    const pair = new Pair(5);
    pair.restart('b', { maxConnsPerPort: 2, maxConnsTotal: 3 });
    pair.b.listen(80);
    assert.throws(() => pair.b.listen(80), PortInUseError);
    pair.b.listen(81);
    for (let i = 0; i < 3; i++) pair.a.dial({ addr: B_ADDR, port: 80 }, pair.now);
    pair.run(500);
    assert.equal(pair.eventsOf('b', 'accepted').length, 2);
    assert.equal(pair.b.refusals.port_full, 1);
    pair.a.dial({ addr: B_ADDR, port: 81 }, pair.now);
    pair.a.dial({ addr: B_ADDR, port: 81 }, pair.now);
    pair.run(500);
    assert.equal(pair.eventsOf('b', 'accepted').length, 3);
    assert.equal(pair.b.refusals.total_full, 1);
    assert.deepEqual(
      pair.eventsOf('a', 'closed').map((e) => e.reason),
      ['refused', 'refused'],
    );
  });

  it('rate-limits SYNs per source silently', () => {
    const pair = new Pair(5, { synRatePerSource: 3 });
    pair.b.listen(9);
    for (let i = 0; i < 5; i++) pair.a.dial({ addr: B_ADDR, port: 9 }, 0);
    pair.run(10);
    assert.equal(pair.eventsOf('b', 'accepted').length, 3);
    assert.equal(pair.b.refusals.rate_limited, 2);
    pair.run(5000);
    assert.equal(pair.eventsOf('b', 'accepted').length, 5, 'retransmitted SYNs get in once tokens refill');
  });

  it('allocates ephemeral ports in sequence and ignores packets for other nodes', () => {
    const pair = new Pair();
    pair.b.listen(1);
    pair.a.dial({ addr: B_ADDR, port: 1 }, 0);
    pair.a.dial({ addr: B_ADDR, port: 1 }, 0);
    pair.run(100);
    assert.deepEqual(
      pair.a.connections().map((c) => c.localPort),
      [49152, 49153],
    );
    const before = pair.wire.length;
    pair.b.handlePacket(
      makePacket({
        flags: Flag.SYN,
        protocol: Proto.Stream,
        src: A_ADDR,
        dst: { network: 0, node: 99 },
        srcPort: 5,
        dstPort: 1,
        seq: 0,
        ack: 0,
        window: 512,
      }),
      pair.now,
    );
    pair.drain();
    assert.equal(pair.wire.length, before);
  });
});
