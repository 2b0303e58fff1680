import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Flag } from '../../src/protocol/packet.js';
import { A_ADDR, B_ADDR, Pair } from './transport-harness.js';

const REQUEST = Buffer.from('ping-1');

/** Answers every byte that arrives on b's accepted connections with the same bytes (an echo service). */
function echoOnB(p: Pair): void {
  const seen = new Set<number>();
  const original = p.drain.bind(p);
  p.drain = () => {
    original();
    for (const e of p.eventsOf('b', 'readable')) {
      if (seen.has(p.events.b.indexOf(e))) continue;
      seen.add(p.events.b.indexOf(e));
      const data = p.readAll('b', e.connId);
      if (data.length > 0) p.b.write(e.connId, data, p.now);
    }
    original();
  };
}

/** Time from the dial until a's connection has the whole echo. */
function echoTime(p: Pair, ca: number): number {
  const start = p.now;
  let got = Buffer.alloc(0);
  p.run(5000, () => {
    got = Buffer.concat([got, p.readAll('a', ca)]);
    return got.length >= REQUEST.length;
  });
  assert.deepEqual(got, REQUEST);
  return p.now - start;
}

describe('data in the SYN (a dial with first bytes)', () => {
  it('to a peer that takes it: the SYN carries the bytes and the echo is back after one round trip', () => {
    const p = new Pair(5);
    p.b.listen(7);
    echoOnB(p);
    p.a.setPeerTakesSynData(B_ADDR.node, true);
    const ca = p.a.dial({ addr: B_ADDR, port: 7 }, p.now, REQUEST);
    const rtt = echoTime(p, ca);
    assert.equal(rtt, 10, 'one round trip of 2 × 5 ms');
    const syn = p.wire.find((w) => w.from === 'a' && w.packet.flags & Flag.SYN);
    assert.deepEqual(Buffer.from(syn?.packet.payload ?? []), REQUEST);
    const synAck = p.wire.find((w) => w.from === 'b' && w.packet.flags & Flag.SYN);
    assert.equal(synAck?.packet.ack, 1 + REQUEST.length, 'the SYN-ACK acknowledges the SYN and its data');
    assert.equal(
      p.wire.filter((w) => w.from === 'a' && w.packet.payload.length > 0).length,
      1,
      'the bytes were sent once, in the SYN',
    );
    assert.equal(p.eventsOf('b', 'accepted').length, 1);
    const order = p.events.b.map((e) => e.type).filter((t) => t === 'accepted' || t === 'readable');
    assert.deepEqual(order.slice(0, 2), ['accepted', 'readable'], 'accepted is reported before its data');
  });

  it("to a pilot-ts peer the echo's ACK waits and rides with the FIN; a reference peer's first data is acknowledged at once", () => {
    for (const pilotTs of [true, false]) {
      const p = new Pair(5);
      p.b.listen(7);
      echoOnB(p);
      p.a.setPeerTakesSynData(B_ADDR.node, true);
      p.a.setPeerHonoursZeroWindow(B_ADDR.node, pilotTs);
      const ca = p.a.dial({ addr: B_ADDR, port: 7 }, p.now, REQUEST);
      echoTime(p, ca);
      const echoedAt = p.now;
      p.run(20);
      const fromA = (): number => p.wire.filter((w) => w.from === 'a' && w.at >= echoedAt).length;
      assert.equal(fromA(), pilotTs ? 0 : 1, pilotTs ? 'nothing sent before the close' : 'an ACK at once');
      p.a.close(ca, p.now);
      p.run(0);
      const closing = p.wire.filter((w) => w.from === 'a' && w.at === p.now).map((w) => w.packet.flags);
      assert.deepEqual(closing, pilotTs ? [Flag.ACK, Flag.FIN] : [Flag.FIN]);
    }
  });

  it('on a large-segment path the SYN offers the large window, so reading the echo sends nothing before the close', () => {
    const p = new Pair(5);
    p.b.listen(7);
    echoOnB(p);
    for (const [side, peer] of [
      [p.a, B_ADDR.node],
      [p.b, A_ADDR.node],
    ] as const) {
      side.setPeerTakesSynData(peer, true);
      side.setPeerHonoursZeroWindow(peer, true);
      side.setPeerSegmentSize(peer, 61_440);
    }
    const ca = p.a.dial({ addr: B_ADDR, port: 7 }, p.now, REQUEST);
    echoTime(p, ca);
    const units = (128 * 61_440) / 4096;
    assert.equal(p.a.connection(ca)?.stats.recvWindow, 128 * 61_440, 'the connection has the large-segment window');
    const echoedAt = p.now;
    p.run(20);
    assert.equal(p.wire.filter((w) => w.from === 'a' && w.at >= echoedAt).length, 0, 'no window update of its own');
    p.a.close(ca, p.now);
    p.run(0);
    const closing = p.wire.filter((w) => w.from === 'a' && w.at === p.now).map((w) => w.packet.flags);
    assert.deepEqual(closing, [Flag.ACK, Flag.FIN], 'the echo is acknowledged with the FIN');
    const syn = p.wire.find((w) => w.from === 'a' && w.packet.flags & Flag.SYN);
    assert.equal(syn?.packet.window, units, 'the SYN offers it');
  });

  it('to a peer not known to take it: a plain SYN, the bytes after the handshake (two round trips)', () => {
    const p = new Pair(5);
    p.b.listen(7);
    echoOnB(p);
    const ca = p.a.dial({ addr: B_ADDR, port: 7 }, p.now, REQUEST);
    assert.equal(echoTime(p, ca), 20);
    const syn = p.wire.find((w) => w.from === 'a' && w.packet.flags & Flag.SYN);
    assert.equal(syn?.packet.payload.length, 0);
  });

  it('a responder that ignores a SYN payload (an older implementation) gets the bytes again at once', () => {
    const p = new Pair(5);
    p.b.listen(7);
    echoOnB(p);
    p.a.setPeerTakesSynData(B_ADDR.node, true);
    // Strip the payload off the SYN on its way, as a responder that never looks at it would.
    p.filter = (from, pkt) => (from === 'a' && pkt.flags & Flag.SYN ? { ...pkt, payload: new Uint8Array(0) } : pkt);
    const ca = p.a.dial({ addr: B_ADDR, port: 7 }, p.now, REQUEST);
    assert.equal(echoTime(p, ca), 20, 'resent with the handshake, not after a retransmission timeout');
  });

  it('a lost SYN is repeated with its data, and the data is delivered once', () => {
    const p = new Pair(5);
    p.b.listen(7);
    echoOnB(p);
    p.a.setPeerTakesSynData(B_ADDR.node, true);
    let dropped = 0;
    p.filter = (from, pkt) => (from === 'a' && pkt.flags & Flag.SYN && dropped++ === 0 ? null : pkt);
    const ca = p.a.dial({ addr: B_ADDR, port: 7 }, p.now, REQUEST);
    const t = echoTime(p, ca);
    assert.ok(t >= 1000 && t < 1100, `after one SYN timeout: ${t} ms`);
    p.run(3000);
    assert.equal(p.readAll('a', ca).length, 0, 'nothing echoed twice');
    assert.equal(p.eventsOf('b', 'accepted').length, 1);
  });

  it('a repeated SYN (its SYN-ACK lost) does not deliver the bytes twice', () => {
    const p = new Pair(5);
    p.b.listen(7);
    echoOnB(p);
    p.a.setPeerTakesSynData(B_ADDR.node, true);
    let dropped = 0;
    p.filter = (from, pkt) =>
      from === 'b' && (pkt.flags & (Flag.SYN | Flag.ACK)) === (Flag.SYN | Flag.ACK) && dropped++ === 0 ? null : pkt;
    const ca = p.a.dial({ addr: B_ADDR, port: 7 }, p.now, REQUEST);
    p.run(3000);
    assert.deepEqual(p.readAll('a', ca), REQUEST, 'echoed exactly once');
    assert.equal(p.eventsOf('a', 'connected').length, 1);
  });

  it('a refused SYN with data: no connection, the dial fails, nothing is delivered', () => {
    const p = new Pair(5);
    p.a.setPeerTakesSynData(B_ADDR.node, true);
    const ca = p.a.dial({ addr: B_ADDR, port: 4242 }, p.now, REQUEST);
    p.run(100);
    assert.deepEqual(
      p.eventsOf('a', 'closed').map((e) => [e.connId, e.reason]),
      [[ca, 'refused']],
    );
    assert.equal(p.eventsOf('b', 'readable').length, 0);
  });

  it('more than one segment: the first rides in the SYN, the rest follows the handshake, in order', () => {
    const p = new Pair(5);
    p.b.listen(7);
    p.a.setPeerTakesSynData(B_ADDR.node, true);
    const big = Buffer.alloc(10_000);
    for (let i = 0; i < big.length; i++) big[i] = i % 251;
    p.a.dial({ addr: B_ADDR, port: 7 }, p.now, big);
    p.run(100);
    const cb = p.eventsOf('b', 'accepted')[0]?.connId ?? 0;
    assert.deepEqual(p.readAll('b', cb), big);
    const syn = p.wire.find((w) => w.from === 'a' && w.packet.flags & Flag.SYN);
    assert.equal(syn?.packet.payload.length, 4096, 'one segment of the default size');
  });
});
