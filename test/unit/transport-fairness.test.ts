import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HANDSHAKE_PORT_POLICY, NetStack } from '../../src/daemon/net-stack.js';
import { detachPayload, Flag, makePacket, Proto, type Packet } from '../../src/protocol/packet.js';
import { TransportEndpoint, type EndpointOptions } from '../../src/transport/endpoint.js';
import { decodeResetCause } from '../../src/transport/reset-cause.js';
import type { EndpointEvent } from '../../src/transport/types.js';
import { Pair, B_ADDR } from './transport-harness.js';

/**
 * Hostile nodes against one endpoint, driven packet by packet: SYN floods from one node, one node
 * taking a port's (or the table's) every slot, SYNs to closed ports. Each test would pass on the
 * reference's rules only if one node could not lock the others out.
 */

const SELF = { network: 0, node: 2 };

/** A SYN from `node` (its source port tells its connections apart). */
function syn(node: number, dstPort: number, srcPort: number): Packet {
  return makePacket({
    flags: Flag.SYN,
    protocol: Proto.Stream,
    src: { network: 0, node },
    dst: SELF,
    srcPort,
    dstPort,
    seq: 0,
    ack: 0,
    window: 512,
    payload: new Uint8Array(0),
  });
}

/** A data segment for a connection the endpoint does not have. */
function stray(node: number, dstPort: number, srcPort: number): Packet {
  return makePacket({
    flags: Flag.ACK,
    protocol: Proto.Stream,
    src: { network: 0, node },
    dst: SELF,
    srcPort,
    dstPort,
    seq: 1,
    ack: 1,
    window: 512,
    payload: Buffer.from('x'),
  });
}

class Victim {
  readonly ep: TransportEndpoint;
  readonly sent: Packet[] = [];
  readonly events: EndpointEvent[] = [];
  now = 0;
  private nextPort = 40_000;

  constructor(options: Partial<Omit<EndpointOptions, 'localAddr'>> = {}) {
    this.ep = new TransportEndpoint({ ...options, localAddr: SELF });
  }

  feed(p: Packet): void {
    this.ep.handlePacket(p, this.now);
    this.drain();
  }

  /** A fresh connection attempt from `node` to `port`. */
  open(node: number, port: number): number {
    const srcPort = this.nextPort++;
    this.feed(syn(node, port, srcPort));
    return srcPort;
  }

  advance(ms: number): void {
    const until = this.now + ms;
    for (;;) {
      const t = this.ep.nextTimeout();
      if (t === undefined || t > until) break;
      this.now = Math.max(this.now, t);
      this.ep.handleTimeout(this.now);
      this.drain();
    }
    this.now = until;
  }

  drain(): void {
    let p: Packet | undefined;
    while ((p = this.ep.pollTransmit())) this.sent.push(p);
    let e: EndpointEvent | undefined;
    while ((e = this.ep.pollEvent())) this.events.push(e);
  }

  /** Live connections per remote node on `port`. */
  holders(port?: number): Map<number, number> {
    const m = new Map<number, number>();
    for (const c of this.ep.connections()) {
      if (c.state === 'TIME_WAIT' || c.state === 'CLOSED' || (port !== undefined && c.localPort !== port)) continue;
      m.set(c.remote.addr.node, (m.get(c.remote.addr.node) ?? 0) + 1);
    }
    return m;
  }

  resetsTo(node: number): Packet[] {
    return this.sent.filter((p) => p.dst.node === node && (p.flags & Flag.RST) !== 0);
  }

  synAcksTo(node: number): Packet[] {
    return this.sent.filter((p) => p.dst.node === node && p.flags === (Flag.SYN | Flag.ACK));
  }

  accepted(node: number): number {
    return this.events.filter((e) => e.type === 'accepted' && e.remote.addr.node === node).length;
  }
}

describe('transport fairness: one node cannot take a port', () => {
  it('a second node gets into a port one node filled: the hog’s oldest connection makes room, with a RST saying why', () => {
    const v = new Victim({ maxConnsPerPort: 8 });
    v.ep.listen(1002);
    const hogPorts = Array.from({ length: 10 }, () => v.open(5, 1002));
    assert.equal(v.holders(1002).get(5), 8, 'uncontended, one node may use every slot');
    v.open(6, 1002);
    assert.equal(v.accepted(6), 1, 'the newcomer is accepted');
    assert.equal(v.holders(1002).get(5), 7);
    const evicted = v.resetsTo(5).filter((p) => decodeResetCause(p.payload) === 'evicted');
    assert.equal(evicted.length, 1);
    assert.equal(evicted[0]?.dstPort, hogPorts[0], 'the oldest goes first');
    assert.ok(v.events.some((e) => e.type === 'closed' && e.reason === 'evicted'));
    // The newcomer may take up to its share (a quarter of 8); then the port is full for it too.
    v.open(6, 1002);
    assert.equal(v.holders(1002).get(6), 2);
    v.open(6, 1002);
    assert.equal(v.holders(1002).get(6), 2, 'no more than its share at the others’ expense');
    const refusal = v.resetsTo(6).at(-1);
    assert.equal(refusal && decodeResetCause(refusal.payload), 'port_full');
    // The hog itself is refused, with the reason: it already holds more than its share.
    v.open(5, 1002);
    assert.equal(decodeResetCause(v.resetsTo(5).at(-1)?.payload ?? new Uint8Array(0)), 'port_full');
    assert.equal(v.ep.refusals.port_full, 4, 'the hog’s 9th and 10th, the newcomer’s 3rd, the hog’s last');
    assert.equal(v.ep.refusals.evicted, 2);
  });

  it('the whole table is shared the same way, and a local dial gets a slot back from a hog', () => {
    const v = new Victim({ maxConnsPerPort: 100, maxConnsTotal: 8 });
    v.ep.listen(80);
    v.ep.listen(81);
    for (let i = 0; i < 8; i++) v.open(5, 80);
    assert.equal(v.holders().get(5), 8);
    v.open(6, 81);
    assert.equal(v.accepted(6), 1, 'another node gets in on another port');
    assert.equal(v.holders().get(5), 7);
    v.ep.dial({ addr: { network: 0, node: 9 }, port: 7 }, v.now);
    v.drain();
    assert.equal(v.holders().get(5), 6, 'our own dial took a slot from the hog');
    // Four nodes at their share (a quarter of 8): a fifth is refused, with a reason.
    const w = new Victim({ maxConnsPerPort: 100, maxConnsTotal: 8 });
    w.ep.listen(80);
    for (const node of [5, 5, 6, 6, 8, 8, 9, 9]) w.open(node, 80);
    w.open(7, 80);
    assert.equal(w.accepted(7), 0);
    assert.equal(decodeResetCause(w.resetsTo(7)[0]?.payload ?? new Uint8Array(0)), 'table_full');
    assert.equal(w.ep.refusals.total_full, 1);
  });

  it('a SYN flood from one node does not use up the others’ SYN budget', () => {
    const v = new Victim();
    v.ep.listen(1002);
    for (let i = 0; i < 3000; i++) v.open(9, 1002);
    assert.ok(v.accepted(9) <= 100, `flooder accepted ${v.accepted(9)} times`);
    for (const node of [10, 11, 12]) v.open(node, 1002);
    assert.deepEqual([v.accepted(10), v.accepted(11), v.accepted(12)], [1, 1, 1], 'quiet nodes still get in at once');
  });
});

describe('transport fairness: the handshake port', () => {
  const policy = { 444: HANDSHAKE_PORT_POLICY };

  it('keeps a few connections per node: a node’s new one replaces its oldest', () => {
    const v = new Victim({ portPolicies: policy });
    v.ep.listen(444);
    v.now = 10_000;
    for (let i = 0; i < 200; i++) {
      v.open(7, 444);
      v.advance(1);
    }
    assert.ok((v.holders(444).get(7) ?? 0) <= 4, `flooder holds ${v.holders(444).get(7)}`);
    v.open(8, 444);
    assert.equal(v.accepted(8), 1);
    assert.equal(v.holders(444).get(8), 1);
  });

  it('drops a connection that outlives a handshake (5 s), whatever its state', () => {
    const v = new Victim({ portPolicies: policy });
    v.ep.listen(444);
    v.open(7, 444);
    v.advance(4_900);
    assert.equal(v.holders(444).get(7), 1);
    v.advance(200);
    assert.equal(v.holders(444).get(7), undefined);
    assert.ok(v.events.some((e) => e.type === 'closed' && e.reason === 'expired'));
    assert.equal(v.resetsTo(7).length, 1, 'the peer is told with a RST');
  });

  it('when the port is full of other nodes’ connections, the oldest gives way to a new node', () => {
    const v = new Victim({ maxConnsPerPort: 8, portPolicies: policy });
    v.ep.listen(444);
    for (let node = 100; node < 108; node++) v.open(node, 444);
    v.open(200, 444);
    assert.equal(v.accepted(200), 1);
    assert.equal(v.holders(444).get(100), undefined, 'the oldest connection was evicted');
  });

  it('limits new connections per node on the port (4/s, burst 8)', () => {
    const v = new Victim({ portPolicies: policy });
    v.ep.listen(444);
    for (let i = 0; i < 50; i++) v.open(7, 444);
    assert.equal(v.accepted(7), 8);
    v.advance(1000);
    for (let i = 0; i < 50; i++) v.open(7, 444);
    assert.equal(v.accepted(7), 12);
  });
});

describe('transport fairness: RSTs are rationed per node', () => {
  it('answers at most a burst of 20 then 10/s to one node, counting the rest; other nodes keep their budget', () => {
    const v = new Victim();
    for (let i = 0; i < 1000; i++) v.open(11, 4444);
    for (let i = 0; i < 1000; i++) v.feed(stray(11, 5555, 30_000 + i));
    assert.equal(v.resetsTo(11).length, 20);
    assert.equal(v.ep.refusals.rst_suppressed, 1980);
    assert.equal(v.ep.refusals.no_listener, 1000, 'every refusal is still counted');
    v.open(12, 4444);
    assert.equal(v.resetsTo(12).length, 1);
    v.advance(1000);
    for (let i = 0; i < 100; i++) v.open(11, 4444);
    assert.equal(v.resetsTo(11).length, 30);
  });

  it('a refusal the caller decides (untrusted) goes through the same budget, with its reason', () => {
    const v = new Victim();
    for (let i = 0; i < 100; i++) v.ep.refuseSyn(syn(13, 1002, 40_000 + i), 'untrusted', 0);
    v.drain();
    const resets = v.resetsTo(13);
    assert.equal(resets.length, 20);
    assert.equal(decodeResetCause(resets[0]?.payload ?? new Uint8Array(0)), 'untrusted');
    assert.deepEqual([v.ep.refusals.untrusted, v.ep.refusals.rst_suppressed], [100, 80]);
  });
});

describe('transport fairness: the dialer learns why', () => {
  it('a refused dial carries the cause; a RST without one (the reference) stays a plain refusal', () => {
    const pair = new Pair(5, { maxConnsPerPort: 1 });
    pair.b.listen(1002);
    pair.a.dial({ addr: B_ADDR, port: 1002 }, 0);
    pair.run(100);
    const full = pair.a.dial({ addr: B_ADDR, port: 1002 }, pair.now);
    pair.run(100);
    assert.deepEqual(
      pair.eventsOf('a', 'closed').find((e) => e.connId === full),
      { type: 'closed', connId: full, reason: 'refused', cause: 'port_full' },
    );
    pair.filter = (from, p) => (from === 'b' && p.flags & Flag.RST ? { ...p, payload: new Uint8Array(0) } : p);
    const bare = pair.a.dial({ addr: B_ADDR, port: 4242 }, pair.now);
    pair.run(100);
    assert.deepEqual(
      pair.eventsOf('a', 'closed').find((e) => e.connId === bare),
      { type: 'closed', connId: bare, reason: 'refused' },
    );
  });

  it('NetStack dials fail with "port full" (unavailable) vs "no listener" (refused) vs "does not trust" (untrusted)', async () => {
    const A = { network: 0, node: 10 };
    const B = { network: 0, node: 11 };
    const stacks: Record<number, NetStack> = {};
    const wire = (p: Packet): void => void setImmediate(() => stacks[p.dst.node]?.handlePacket(detachPayload(p)));
    const a = (stacks[A.node] = new NetStack({ localAddr: A, transmit: wire }));
    // B refuses every SYN to port 9 as from an untrusted node, as the daemon's trust gate does.
    const b = (stacks[B.node] = new NetStack({
      localAddr: B,
      transmit: wire,
      endpoint: { maxConnsPerPort: 1 },
    }));
    const gate = b.handlePacket.bind(b);
    b.handlePacket = (p: Packet): void => (p.dstPort === 9 && p.flags === Flag.SYN ? b.refuseUntrusted(p) : gate(p));
    try {
      const l = b.listenSync(1002);
      l.on('connection', () => undefined);
      const first = await a.dial(B, 1002);
      await assert.rejects(
        a.dial(B, 1002),
        (err: Error & { code?: string }) => err.code === 'unavailable' && /port full/.test(err.message),
      );
      await assert.rejects(
        a.dial(B, 4242),
        (err: Error & { code?: string }) => err.code === 'refused' && /no listener/.test(err.message),
      );
      await assert.rejects(
        a.dial(B, 9),
        (err: Error & { code?: string }) => err.code === 'untrusted' && /does not trust/.test(err.message),
      );
      first.destroy();
    } finally {
      a.close();
      b.close();
    }
  });
});
