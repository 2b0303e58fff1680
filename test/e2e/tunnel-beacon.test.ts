import assert from 'node:assert/strict';
import type { RemoteInfo } from 'node:dgram';
import { describe, it } from 'node:test';
import { decodeBeacon, encodeBeacon } from '../../src/protocol/beacon.js';
import { closeAfterAll, collect, datagram, KeyDirectory, openNode, RawSocket, sleep, waitFor } from './tunnel-harness.js';

const track = closeAfterAll();

/** The beacon's job in miniature: discover, punch coordination, relay (PROTOCOL.md §4). */
class MiniBeacon {
  readonly nodes = new Map<number, RemoteInfo>();
  relayed = 0;
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
      if (!target) return;
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
    assert.ok(target.framesOf('PILP').every((d) => d.length === 4));
    assert.equal(target.received.find((r) => r.data.toString('latin1', 0, 4) === 'PILP')?.from.port, a.localPort);

    const stranger = track(await RawSocket.open());
    await stranger.send(encodeBeacon({ type: 'PunchCommand', ip: '127.0.0.1', port: target.port }), a.localPort);
    await stranger.send(encodeBeacon({ type: 'RelayDeliver', sender: 9, frame: Buffer.from('PILT') }), a.localPort);
    await waitFor(() => a.stats.dropped.not_from_beacon === 2, 1000, 'foreign beacon messages dropped');
    await sleep(50);
    assert.equal(target.framesOf('PILP').length, 3);
  });
});
