import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { makeAddr } from '../../src/protocol/address.js';
import { makePacket, Proto, type Packet } from '../../src/protocol/packet.js';
import type { UdpEndpoint } from '../../src/tunnel/endpoint.js';
import { PeerCrypto } from '../../src/tunnel/peer-crypto.js';
import { SimTunnelNode } from './tunnel-node.js';
import { SimWorld } from './tunnel-world.js';

/**
 * Which AES-GCM contexts a tunnel makes ahead once a turn's frames are out (ContextPrep), driven
 * through a real TunnelCore with a session to a batching peer: only a flush that sends a request
 * (a dial's SYN, `flush(true)`) leaves our next seal's context for later.
 */

const ep = (host: string, port: number): UdpEndpoint => ({ host, port, family: 4 });

function packetTo(from: number, to: number): Packet {
  return makePacket({
    flags: 0,
    protocol: Proto.Datagram,
    src: makeAddr(1, from),
    dst: makeAddr(1, to),
    srcPort: 1000,
    dstPort: 1000,
    seq: 0,
    ack: 0,
    window: 0,
    payload: Buffer.from('x'),
  });
}

describe('contexts made after a turn, through the tunnel core', () => {
  const seals: boolean[] = [];
  const original = PeerCrypto.prototype.prepare;
  before(() => {
    PeerCrypto.prototype.prepare = function (this: PeerCrypto, seal: boolean): void {
      seals.push(seal);
      original.call(this, seal);
    };
  });
  after(() => {
    PeerCrypto.prototype.prepare = original;
  });

  test('a request flush defers the next seal context; any other flush makes it', () => {
    const world = new SimWorld({ seed: 3, loss: 0 });
    const a = new SimTunnelNode(world, 'a', 201, ep('192.0.2.1', 4000), undefined);
    const b = new SimTunnelNode(world, 'b', 202, ep('192.0.2.2', 4000), undefined);
    a.start();
    b.start();
    world.runUntil(world.now + 500);
    a.connect(b);
    world.runUntil(world.now + 2000);
    assert.ok(a.sendTo(b.nodeId), 'the tunnel knows b');
    world.runUntil(world.now + 500);
    assert.ok(
      a.core.peers().some((p) => p.nodeId === b.nodeId && p.encrypted),
      'a has a session with b',
    );
    a.core.setBatching(b.nodeId, true);

    const turn = (request: boolean): boolean[] => {
      a.core.prepareContexts();
      seals.length = 0;
      assert.ok(a.core.send(b.nodeId, packetTo(a.nodeId, b.nodeId), world.now));
      assert.ok(a.core.flushPending, 'the packet waits for the flush of a batching peer');
      a.core.flush(request);
      a.core.prepareContexts();
      while (a.core.pollTransmit());
      return [...seals];
    };
    assert.deepEqual(turn(true), [false], 'after a request only the context of the answer is made');
    assert.deepEqual(turn(false), [true], 'after an ACK or reset the next seal is made too');
  });
});
