import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { makeAddr } from '../../src/protocol/address.js';
import { makePacket, Proto, type Packet } from '../../src/protocol/packet.js';
import type { UdpEndpoint } from '../../src/tunnel/endpoint.js';
import { PeerCrypto } from '../../src/tunnel/peer-crypto.js';
import { CONTEXT_PREP_DELAY_MS } from '../../src/tunnel/policy.js';
import { SimTunnelNode } from './tunnel-node.js';
import { SimWorld } from './tunnel-world.js';

/**
 * When a tunnel makes its AES-GCM contexts ahead (ContextPrep), driven through a real TunnelCore
 * with a session to a batching peer: CONTEXT_PREP_DELAY_MS after the first frame sealed or opened,
 * as a timeout of the core, never in the turn that sent.
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

/** Two simulated tunnels with a session between them (a has sent b one packet). */
function sessionPair(seed: number): { world: SimWorld; a: SimTunnelNode; b: SimTunnelNode } {
  const world = new SimWorld({ seed, loss: 0 });
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
  return { world, a, b };
}

describe('contexts made after an exchange, through the tunnel core', () => {
  let prepared = 0;
  const original = PeerCrypto.prototype.prepare;
  before(() => {
    PeerCrypto.prototype.prepare = function (this: PeerCrypto): void {
      prepared++;
      original.call(this);
    };
  });
  after(() => {
    PeerCrypto.prototype.prepare = original;
  });

  test('not in the turn that sent: a timeout of the core, the delay after the first frame', () => {
    const { world, a, b } = sessionPair(3);
    a.core.setBatching(b.nodeId, true);

    const sendAt = (t: number): void => {
      assert.ok(a.core.send(b.nodeId, packetTo(a.nodeId, b.nodeId), t));
      a.core.flush();
      while (a.core.pollTransmit());
    };
    const t0 = world.now + 1000;
    prepared = 0;
    sendAt(t0);
    assert.equal(prepared, 0, 'nothing made in the turn that sent');
    assert.ok((a.core.nextTimeout() ?? Infinity) <= t0 + CONTEXT_PREP_DELAY_MS, 'a timeout is due for it');
    a.core.handleTimeout(t0 + 1);
    sendAt(t0 + 1);
    a.core.handleTimeout(t0 + CONTEXT_PREP_DELAY_MS - 1);
    assert.equal(prepared, 0, 'not before the delay has passed');
    a.core.handleTimeout(t0 + CONTEXT_PREP_DELAY_MS);
    assert.equal(prepared, 1, 'then once, for the one peer used: more traffic did not put it off');
    a.core.handleTimeout(t0 + 100);
    assert.equal(prepared, 1, 'and not again without traffic');
  });

  test('after an exchange in the simulated world both sides have made their contexts', () => {
    const { world, a, b } = sessionPair(4);
    prepared = 0;
    assert.ok(a.sendTo(b.nodeId));
    world.runUntil(world.now + 100);
    assert.equal(prepared, 2, 'a after sealing, b after opening');
  });
});
