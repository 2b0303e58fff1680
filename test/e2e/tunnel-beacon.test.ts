import assert from 'node:assert/strict';
import type { RemoteInfo } from 'node:dgram';
import { describe, it } from 'node:test';
import { decodeBeacon, encodeBeacon } from '../../src/protocol/beacon.js';
import type { Tunnel } from '../../src/tunnel/index.js';
import {
  closeAfterAll,
  collect,
  datagram,
  endpointOf,
  KeyDirectory,
  openNode,
  RawSocket,
  sleep,
} from './tunnel-harness.js';
import { waitFor } from '../wait.js';

const track = closeAfterAll();

/** The beacon's job in miniature: discover, punch coordination, relay (PROTOCOL.md §4). */
class MiniBeacon {
  readonly nodes = new Map<number, RemoteInfo>();
  relayed = 0;
  /** Off: punch requests are not answered (as a beacon refusing them). */
  punch = true;
  private constructor(readonly raw: RawSocket) {
    raw.socket.on('message', (data, from) => this.#handle(data, from));
  }

  static async start(): Promise<MiniBeacon> {
    return new MiniBeacon(await RawSocket.open());
  }

  get address(): string {
    return `127.0.0.1:${this.raw.port}`;
  }

  #send(bytes: Uint8Array, to: RemoteInfo): void {
    this.raw.socket.send(bytes, to.port, to.address);
  }

  #handle(data: Buffer, from: RemoteInfo): void {
    const msg = decodeBeacon(data);
    if (!msg.ok) return;
    const m = msg.value;
    if (m.type === 'Discover') {
      if (m.nodeId !== 0) this.nodes.set(m.nodeId, from);
      this.#send(encodeBeacon({ type: 'DiscoverReply', ip: from.address, port: from.port }), from);
    } else if (m.type === 'PunchRequest') {
      this.nodes.set(m.requester, from);
      const target = this.nodes.get(m.target);
      if (!target || !this.punch) return;
      this.#send(encodeBeacon({ type: 'PunchCommand', ip: target.address, port: target.port }), from);
      this.#send(encodeBeacon({ type: 'PunchCommand', ip: from.address, port: from.port }), target);
    } else if (m.type === 'Relay') {
      const dest = this.nodes.get(m.dest);
      if (!dest) return;
      this.relayed += 1;
      this.#send(encodeBeacon({ type: 'RelayDeliver', sender: m.sender, frame: m.frame }), dest);
    }
  }
}

describe('tunnel: beacon', () => {
  it('discovers its own endpoint from the tunnel socket', async () => {
    const mini = await MiniBeacon.start();
    track(mini.raw);
    const dir = new KeyDirectory();
    const t = track(await openNode(dir, 1, { beacon: mini.address }));
    assert.equal(await t.discoverEndpoint(1000), `127.0.0.1:${t.localPort}`);
    const noBeacon = track(await openNode(dir, 2));
    assert.equal(await noBeacon.discoverEndpoint(100), undefined);
  });

  it('relays every frame through the beacon once a peer is switched to relay', async () => {
    const mini = await MiniBeacon.start();
    track(mini.raw);
    const dir = new KeyDirectory();
    const a = track(await openNode(dir, 1, { beacon: mini.address }));
    const b = track(await openNode(dir, 2, { beacon: mini.address }));
    a.registerWithBeacon();
    b.registerWithBeacon();
    await waitFor(() => mini.nodes.size === 2, 1000, 'registrations');
    const atA = collect(a);
    const atB = collect(b);
    const activated: number[] = [];
    b.on('relay-activated', (e) => activated.push(e.peerNodeId));
    // An endpoint nothing listens on: only the relay can carry the traffic.
    const dead = track(await RawSocket.open());
    a.addPeer(2, dead.endpoint);
    assert.equal(a.setRelay(2, true), true);
    a.send(2, datagram(1, 2, 'via relay'));
    await waitFor(() => atB.length === 1, 2000, 'relayed packet at B');
    assert.deepEqual(activated, [1]);
    assert.deepEqual(
      b.peers().map((p) => [p.nodeId, p.relay, p.encrypted]),
      [[1, true, true]],
    );
    b.send(1, datagram(2, 1, 'back'));
    await waitFor(() => atA.length === 1, 1000, 'relayed reply at A');
    assert.equal(atB[0]?.text, 'via relay');
    assert.equal(atA[0]?.text, 'back');
    assert.equal(dead.received.filter((r) => r.data.subarray(0, 3).toString() === 'PIL').length <= 1, true);
    assert.ok((a.stats.sent.relay ?? 0) >= 2 && (b.stats.sent.relay ?? 0) >= 2);
    assert.ok(mini.relayed >= 4);
  });

  it('punches towards the endpoint the beacon names, and ignores beacon messages from anyone else', async () => {
    const mini = await MiniBeacon.start();
    track(mini.raw);
    const dir = new KeyDirectory();
    const a = track(await openNode(dir, 1, { beacon: mini.address }));
    const target = track(await RawSocket.open());
    await target.send(encodeBeacon({ type: 'Discover', nodeId: 7 }), mini.raw.port);
    await waitFor(() => mini.nodes.has(7), 1000, 'target registered');
    a.requestPunch(7);
    await waitFor(() => target.framesOf('PILP').length === 3, 1000, 'three PILP');
    // The magic and our node id (the reference reads only the magic).
    assert.ok(target.framesOf('PILP').every((d) => d.length === 8 && d.readUInt32BE(4) === 1));
    assert.equal(target.received.find((r) => r.data.toString('latin1', 0, 4) === 'PILP')?.from.port, a.localPort);

    const stranger = track(await RawSocket.open());
    await stranger.send(encodeBeacon({ type: 'PunchCommand', ip: '127.0.0.1', port: target.port }), a.localPort);
    await stranger.send(encodeBeacon({ type: 'RelayDeliver', sender: 9, frame: Buffer.from('PILT') }), a.localPort);
    await waitFor(() => a.stats.dropped.not_from_beacon === 2, 1000, 'foreign beacon messages dropped');
    await sleep(50);
    assert.equal(target.framesOf('PILP').length, 3);
  });

  /** Two tunnels with a working direct path between them, known to the beacon. */
  async function directPair(
    mini: MiniBeacon,
  ): Promise<{ a: Tunnel; b: Tunnel; atA: { from: number; text: string }[]; atB: { from: number; text: string }[] }> {
    const dir = new KeyDirectory();
    const a = track(await openNode(dir, 1, { beacon: mini.address }));
    const b = track(await openNode(dir, 2, { beacon: mini.address }));
    a.registerWithBeacon();
    b.registerWithBeacon();
    await waitFor(() => mini.nodes.size === 2, 1000, 'registrations');
    const atA = collect(a);
    const atB = collect(b);
    a.addPeer(2, endpointOf(b));
    a.send(2, datagram(1, 2, 'hello'));
    await waitFor(() => atB.length === 1, 2000, 'direct packet at B');
    b.send(1, datagram(2, 1, 'hi'));
    await waitFor(() => atA.length === 1, 2000, 'direct reply at A');
    return { a, b, atA, atB };
  }

  it('attack: a replayed PILA through the relay does not move a direct peer to the relay', async () => {
    const mini = await MiniBeacon.start();
    track(mini.raw);
    const { a, b, atA } = await directPair(mini);
    // The attacker obtains A's PILA (the same frame A sends to anyone it greets) …
    const catcher = track(await RawSocket.open());
    a.addPeer(99, catcher.endpoint);
    await waitFor(() => catcher.framesOf('PILA').length >= 1, 1000, "A's PILA");
    const pila = catcher.framesOf('PILA')[0] as Buffer;
    // … claims node 1 at the beacon and relays the PILA to B.
    const attacker = track(await RawSocket.open());
    await attacker.send(encodeBeacon({ type: 'Discover', nodeId: 1 }), mini.raw.port);
    await waitFor(() => mini.nodes.get(1)?.port === attacker.port, 1000, 'node 1 claimed');
    const relayedBefore = mini.relayed;
    await attacker.send(encodeBeacon({ type: 'Relay', sender: 1, dest: 2, frame: pila }), mini.raw.port);
    await waitFor(() => mini.relayed > relayedBefore, 1000, 'replay relayed to B');
    await sleep(100);
    assert.equal(b.peers().find((p) => p.nodeId === 1)?.relay, false, 'B keeps the direct path to A');
    b.send(1, datagram(2, 1, 'still direct'));
    await waitFor(() => atA.length === 2, 1000, 'B reaches A directly');
    assert.equal(attacker.received.filter((r) => r.data[0] === 0x06).length, 0, 'nothing of B reaches the attacker');
  });

  it('leaves the relay as soon as the direct path answers a probe (the relay is not sticky)', async () => {
    const mini = await MiniBeacon.start();
    track(mini.raw);
    const { a, b, atA, atB } = await directPair(mini);
    const upgraded: number[] = [];
    a.on('direct-upgraded', (e) => upgraded.push(e.peerNodeId));
    // What a daemon does after a dial that got no answer: the relay, although direct works.
    assert.equal(a.setRelay(2, true), true);
    a.send(2, datagram(1, 2, 'via relay'));
    await waitFor(() => atB.length === 2, 2000, 'relayed packet at B');
    assert.equal(a.peers().find((p) => p.nodeId === 2)?.relay, true);
    await waitFor(() => upgraded.includes(2), 5000, 'A back on the direct path');
    await waitFor(() => b.peers().find((p) => p.nodeId === 1)?.relay === false, 2000, 'B back on the direct path');
    const relayed = mini.relayed;
    a.send(2, datagram(1, 2, 'direct again'));
    b.send(1, datagram(2, 1, 'direct too'));
    await waitFor(() => atB.length === 3 && atA.length === 2, 2000, 'both directions');
    assert.equal(mini.relayed, relayed, 'nothing more went through the relay');
  });

  it('stays on the relay while the direct path is dead, probing it less and less often', async () => {
    const mini = await MiniBeacon.start();
    mini.punch = false; // else b's punch would show a the live direct path
    track(mini.raw);
    const dir = new KeyDirectory();
    const a = track(await openNode(dir, 1, { beacon: mini.address }));
    const b = track(await openNode(dir, 2, { beacon: mini.address }));
    a.registerWithBeacon();
    b.registerWithBeacon();
    await waitFor(() => mini.nodes.size === 2, 1000, 'registrations');
    const atB = collect(b);
    const dead = track(await RawSocket.open());
    a.addPeer(2, dead.endpoint);
    a.setRelay(2, true);
    a.send(2, datagram(1, 2, 'via relay'));
    await waitFor(() => atB.length === 1, 2000, 'relayed packet at B');
    await waitFor(() => dead.framesOf('PILS').length >= 1, 4000, 'a probe to the dead endpoint');
    await sleep(2500);
    assert.equal(dead.framesOf('PILS').length, 1, 'the next probe waits longer');
    assert.equal(a.peers().find((p) => p.nodeId === 2)?.relay, true);
  });
});
