import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Flag, makePacket, Proto } from '../../src/protocol/packet.js';
import { A_ADDR, B_ADDR, Pair } from './transport-harness.js';

/** Packets from a connection one side no longer has: the other side must not be left open by them. */
describe('segments for a connection the endpoint does not have', () => {
  it('a SYN-ACK answering an abandoned dial is answered with RST, so the responder does not stay ESTABLISHED', () => {
    const p = new Pair(5);
    p.b.listen(7);
    // The RST of the abort is lost on the way.
    p.filter = (from, pkt) => (from === 'a' && pkt.flags & Flag.RST && p.now < 8 ? null : pkt);
    const ca = p.a.dial({ addr: B_ADDR, port: 7 }, p.now);
    p.runUntil(7); // B has accepted and its SYN-ACK is on the way
    assert.equal(p.eventsOf('b', 'accepted').length, 1);
    p.a.abort(ca, p.now);
    p.run(1000);
    assert.deepEqual(p.a.connections(), []);
    assert.deepEqual(
      p.b.connections().map((c) => c.state),
      [],
      'the responder was reset',
    );
    assert.deepEqual(
      p.eventsOf('b', 'closed').map((e) => e.reason),
      ['reset'],
    );
  });

  it('a FIN for a connection reset earlier is answered with RST instead of being retransmitted for minutes', () => {
    const p = new Pair(5);
    const { ca, cb } = p.connect(7);
    let dropped = 0;
    p.filter = (from, pkt) => {
      if (from === 'a' && pkt.flags & Flag.RST && dropped === 0) {
        dropped++;
        return null;
      }
      return pkt;
    };
    p.a.abort(ca, p.now); // its RST is lost
    p.run(100);
    assert.equal(dropped, 1);
    assert.equal(p.b.connection(cb)?.state, 'ESTABLISHED');
    p.b.close(cb, p.now);
    p.run(1000);
    assert.deepEqual(p.b.connections(), [], 'the FIN got a RST back');
    assert.deepEqual(
      p.eventsOf('b', 'closed').map((e) => e.reason),
      ['reset'],
    );
  });

  it('a stray bare ACK is not answered (no RST for duplicates)', () => {
    const p = new Pair(5);
    const { ca } = p.connect(7);
    const localPort = p.a.localPortOf(ca) as number;
    p.a.abort(ca, p.now);
    p.run(100);
    const before = p.wire.length;
    p.a.handlePacket(
      makePacket({
        flags: Flag.ACK,
        protocol: Proto.Stream,
        src: B_ADDR,
        dst: A_ADDR,
        srcPort: 7,
        dstPort: localPort,
        seq: 1,
        ack: 1,
        window: 8,
        payload: new Uint8Array(0),
      }),
      p.now,
    );
    p.drain();
    assert.equal(p.wire.length, before, 'nothing sent');
  });
});
