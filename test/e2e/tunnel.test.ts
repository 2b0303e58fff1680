import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Identity, TunnelSession } from '../../src/crypto/index.js';
import { decodePacket, encodePacket } from '../../src/protocol/packet.js';
import { decodePils, encodePilk, encodePilt } from '../../src/protocol/tunnel.js';
import type { Tunnel } from '../../src/tunnel/index.js';
import {
  closeAfterAll,
  collect,
  connectRawPeer,
  datagram,
  endpointOf,
  KeyDirectory,
  openNode,
  TapProxy,
  RawPeer,
  RawSocket,
  sleep,
} from './tunnel-harness.js';
import { waitFor } from '../wait.js';

const track = closeAfterAll();

async function pair(host = '127.0.0.1'): Promise<{ dir: KeyDirectory; a: Tunnel; b: Tunnel }> {
  const dir = new KeyDirectory();
  const a = track(await openNode(dir, 1, { listen: `${host.includes(':') ? `[${host}]` : host}:0` }));
  const b = track(await openNode(dir, 2, { listen: `${host.includes(':') ? `[${host}]` : host}:0` }));
  return { dir, a, b };
}

/** A tunnel (node 1) and a hand-driven peer (node 3) that completed the key exchange. */
async function tunnelAndRawPeer(): Promise<{ t: Tunnel; peer: RawPeer; got: { from: number; text: string }[] }> {
  const made = await connectRawPeer();
  track(made.t);
  track(made.peer.raw);
  return made;
}

describe('tunnel: first contact', () => {
  it('delivers each packet once, encrypted, in both directions (IPv4)', async () => {
    const { a, b } = await pair();
    const atB = collect(b);
    const atA = collect(a);
    a.addPeer(2, endpointOf(b));
    assert.equal(a.send(2, datagram(1, 2, 'a1')), true);
    assert.equal(a.send(2, datagram(1, 2, 'a2')), true);
    await waitFor(() => atB.length === 2, 2000, 'packets at B');
    assert.equal(b.send(1, datagram(2, 1, 'b1')), true);
    await waitFor(() => atA.length === 1, 2000, 'packet at A');
    await sleep(150);
    assert.deepEqual(atB, [
      { from: 1, text: 'a1' },
      { from: 1, text: 'a2' },
    ]);
    assert.deepEqual(atA, [{ from: 2, text: 'b1' }]);
    for (const t of [a, b]) {
      assert.equal(t.stats.sent.PILT, undefined);
      assert.ok((t.stats.sent.PILS ?? 0) >= 1);
      assert.equal(t.stats.dropped.plaintext, undefined);
    }
    assert.deepEqual(b.peers(), [
      { nodeId: 1, endpoint: endpointOf(a), encrypted: true, authenticated: true, relay: false },
    ]);
    assert.equal(a.send(99, datagram(1, 99, 'nobody')), false);
  });

  it('handles both sides sending first at once (IPv6)', async () => {
    const { a, b } = await pair('::1');
    const atB = collect(b);
    const atA = collect(a);
    a.addPeer(2, endpointOf(b, '::1'));
    b.addPeer(1, endpointOf(a, '::1'));
    for (let i = 0; i < 5; i++) {
      a.send(2, datagram(1, 2, `a${i}`));
      b.send(1, datagram(2, 1, `b${i}`));
    }
    await waitFor(() => atA.length === 5 && atB.length === 5, 2000, 'both directions');
    await sleep(150);
    assert.deepEqual(
      atB.map((g) => g.text),
      ['a0', 'a1', 'a2', 'a3', 'a4'],
    );
    assert.deepEqual(
      atA.map((g) => g.text),
      ['b0', 'b1', 'b2', 'b3', 'b4'],
    );
    assert.equal(a.stats.sent.PILT, undefined);
    assert.ok((a.stats.sent.PILA ?? 0) <= 3, `PILA count ${a.stats.sent.PILA}`);
  });

  it('lets a dual-stack socket talk to an IPv4-only one', async () => {
    const dir = new KeyDirectory();
    const a = track(await openNode(dir, 1, { listen: '[::]:0' }));
    const b = track(await openNode(dir, 2));
    const atA = collect(a);
    const atB = collect(b);
    a.addPeer(2, endpointOf(b));
    a.send(2, datagram(1, 2, 'from dual stack'));
    await waitFor(() => atB.length === 1, 2000, 'packet at B');
    b.send(1, datagram(2, 1, 'to dual stack'));
    await waitFor(() => atA.length === 1, 2000, 'packet at A');
    assert.equal(a.peers()[0]?.endpoint, endpointOf(b));
  });

  it('accepts a first PILS that overtakes the PILA, and flushes its own queue', async () => {
    const dir = new KeyDirectory();
    const t = track(await openNode(dir, 1));
    const identity = Identity.generate();
    dir.keys.set(3, identity.publicKey);
    const raw = track(await RawSocket.open());
    const peer = new RawPeer(raw, 3, identity);
    const got = collect(t);
    t.addPeer(3, raw.endpoint);
    t.send(3, datagram(1, 3, 'queued at T'));
    await waitFor(() => raw.framesOf('PILA').length >= 1, 1000, 'PILA from T');
    const tPila = raw.framesOf('PILA')[0] as Buffer;
    peer.keyFor(tPila.subarray(8, 40));
    await raw.send(peer.pils(datagram(3, 1, 'early')), t.localPort);
    await sleep(30);
    assert.equal(got.length, 0);
    await raw.send(peer.pila(), t.localPort);
    await waitFor(() => got.length === 1 && raw.framesOf('PILS').length === 1, 2000, 'early frame and flush');
    assert.deepEqual(got, [{ from: 3, text: 'early' }]);
    assert.equal(raw.framesOf('PILT').length, 0);
    const frame = decodePils(raw.framesOf('PILS')[0] as Buffer);
    assert.ok(frame.ok);
    const reader = new TunnelSession(peer.keyPair.tunnelKey(t.x25519PublicKey));
    const opened = reader.open(frame.value.nonce, frame.value.sealed);
    assert.ok(opened.ok);
    const packet = decodePacket(opened.value);
    assert.ok(packet.ok);
    assert.equal(Buffer.from(packet.value.payload).toString(), 'queued at T');
  });
});

describe('tunnel: refusals', () => {
  it('refuses plaintext and anonymous key exchange while encryption is on', async () => {
    const { t, peer, got } = await tunnelAndRawPeer();
    await peer.raw.send(encodePilt(encodePacket(datagram(3, 1, 'plain'))), t.localPort);
    const pilasBefore = peer.raw.framesOf('PILA').length;
    await peer.raw.send(encodePilk({ senderNode: 5, x25519Public: peer.keyPair.publicKey }), t.localPort);
    await waitFor(() => peer.raw.framesOf('PILA').length > pilasBefore, 1000, 'PILA answering PILK');
    assert.equal(got.length, 0);
    assert.equal(t.stats.dropped.plaintext, 1);
    assert.equal(t.stats.dropped.anonymous_key_exchange, 1);
    assert.equal(t.hasPeer(5), false);
  });

  it('refuses a PILA whose key is not the registry key for the claimed node', async () => {
    const dir = new KeyDirectory();
    const t = track(await openNode(dir, 1));
    dir.keys.set(3, Identity.generate().publicKey);
    const attacker = new RawPeer(track(await RawSocket.open()), 3, Identity.generate());
    const genuineKey = dir.keys.get(3) as Uint8Array;
    await attacker.raw.send(attacker.pila(), t.localPort);
    // Genuine key embedded, attacker's signature.
    const forged = Buffer.from(attacker.pila());
    forged.set(genuineKey, 40);
    await attacker.raw.send(forged, t.localPort);
    await waitFor(
      () => (t.stats.dropped.key_mismatch ?? 0) + (t.stats.dropped.bad_signature ?? 0) === 2,
      2000,
      'refusals',
    );
    assert.equal(t.stats.dropped.key_mismatch, 1);
    assert.equal(t.stats.dropped.bad_signature, 1);
    assert.equal(t.hasPeer(3), false);
    assert.equal(attacker.raw.framesOf('PILA').length, 0);
    attacker.session = new TunnelSession(new Uint8Array(32));
    await attacker.raw.send(attacker.pils(datagram(3, 1, 'x')), t.localPort);
    await waitFor(() => t.stats.dropped.no_context === 1, 1000, 'no context');
  });

  it('drops packets whose inner source or destination does not match the tunnel', async () => {
    const { t, peer, got } = await tunnelAndRawPeer();
    await peer.raw.send(peer.pils(datagram(4, 1, 'claims node 4')), t.localPort);
    await peer.raw.send(peer.pils(datagram(3, 9, 'for node 9')), t.localPort);
    await peer.raw.send(peer.pils(datagram(3, 0xffffffff, 'broadcast')), t.localPort);
    await peer.raw.send(peer.pils(datagram(3, 1, 'fine')), t.localPort);
    await waitFor(() => got.length === 2, 1000, 'valid packets');
    assert.deepEqual(
      got.map((g) => g.text),
      ['broadcast', 'fine'],
    );
    assert.equal(t.stats.dropped.spoofed_source, 1);
    assert.equal(t.stats.dropped.wrong_destination, 1);
  });
});

describe('tunnel: replay protection', () => {
  it('drops a replayed PILS, and a replayed PILA does not re-admit old frames or move the endpoint', async () => {
    const { a, b } = await pair();
    const proxy = await TapProxy.between(a.localPort, b.localPort);
    track(proxy.raw);
    const atB = collect(b);
    const replays: bigint[] = [];
    b.on('nonce-replay', (e) => replays.push(e.counter));
    a.addPeer(2, proxy.endpoint);
    a.send(2, datagram(1, 2, 'once'));
    await waitFor(() => atB.length === 1, 2000, 'first packet');
    const pils = proxy.framesOf('PILS');
    const pila = proxy.framesOf('PILA')[0];
    assert.equal(pils.length, 1);
    assert.ok(pila);
    await proxy.replay(pils[0] as Buffer);
    await waitFor(() => b.stats.dropped.replay === 1, 1000, 'replay drop');
    assert.deepEqual(replays, [1n]);

    const attacker = track(await RawSocket.open());
    await attacker.send(pila, b.localPort);
    await proxy.replay(pila);
    await sleep(100);
    await proxy.replay(pils[0] as Buffer);
    await waitFor(() => b.stats.dropped.replay === 2, 1000, 'second replay drop');
    assert.equal(atB.length, 1);
    assert.equal(b.peers()[0]?.endpoint, proxy.endpoint);
    a.send(2, datagram(1, 2, 'later'));
    await waitFor(() => atB.length === 2, 1000, 'fresh packet still accepted');
  });
});

describe('tunnel: restart and modes', () => {
  it('recovers when the peer restarts with a new key and the other side sends first', async () => {
    const dir = new KeyDirectory();
    const a = track(await openNode(dir, 1));
    const identityB = Identity.generate();
    const b1 = await openNode(dir, 2, { identity: identityB });
    const port = b1.localPort;
    a.addPeer(2, `127.0.0.1:${port}`);
    const first = collect(b1);
    a.send(2, datagram(1, 2, 'before'));
    await waitFor(() => first.length === 1, 2000, 'before restart');
    await b1.close();

    const b2 = track(await openNode(dir, 2, { identity: identityB, listen: `127.0.0.1:${port}` }));
    const atB = collect(b2);
    const rekeys: boolean[] = [];
    a.on('established', (e) => rekeys.push(e.rekeyed));
    const started = Date.now();
    let n = 0;
    while (atB.length === 0) {
      assert.ok(Date.now() - started < 2000, 'traffic did not resume within 2 s');
      a.send(2, datagram(1, 2, `after${n++}`));
      await sleep(100);
    }
    assert.ok(rekeys.includes(true));
    assert.equal(b2.stats.sent.PILT, undefined);
    const atA = collect(a);
    b2.send(1, datagram(2, 1, 'back'));
    await waitFor(() => atA.length === 1, 1000, 'reverse direction');
  });

  it('re-fetches the registry key when a known node re-registered with a new identity', async () => {
    const dir = new KeyDirectory();
    const a = track(await openNode(dir, 1));
    const b1 = await openNode(dir, 2);
    const port = b1.localPort;
    b1.addPeer(1, endpointOf(a));
    await new Promise((resolve) => a.once('established', resolve));
    await b1.close();
    const b2 = track(await openNode(dir, 2, { listen: `127.0.0.1:${port}` }));
    const atA = collect(a);
    b2.addPeer(1, endpointOf(a));
    b2.send(1, datagram(2, 1, 'new identity'));
    await waitFor(() => atA.length === 1, 4000, 'packet from the re-registered node');
    assert.equal(atA[0]?.text, 'new identity');
  });

  it('speaks PILT both ways with encryption off and ignores key exchange', async () => {
    const dir = new KeyDirectory();
    const a = track(await openNode(dir, 1, { encrypt: false }));
    const b = track(await openNode(dir, 2, { encrypt: false }));
    const atA = collect(a);
    const atB = collect(b);
    a.addPeer(2, endpointOf(b));
    a.send(2, datagram(1, 2, 'plain'));
    await waitFor(() => atB.length === 1, 1000, 'plain at B');
    assert.equal(b.send(1, datagram(2, 1, 'reply')), true);
    await waitFor(() => atA.length === 1, 1000, 'reply at A');
    assert.equal(a.stats.sent.PILA, undefined);
    assert.equal(a.stats.sent.PILT, 1);
    const stranger = new RawPeer(track(await RawSocket.open()), 3, Identity.generate());
    await stranger.raw.send(stranger.pila(), b.localPort);
    await waitFor(() => b.stats.dropped.encryption_off === 1, 1000, 'PILA ignored');
    assert.equal(b.peers().length, 1);
    assert.equal(b.peers()[0]?.encrypted, false);
  });

  it('counts malformed datagrams without throwing', async () => {
    const { t } = await tunnelAndRawPeer();
    const raw = track(await RawSocket.open());
    for (const bytes of [
      Buffer.alloc(0),
      Buffer.from('PI'),
      Buffer.from('PILS123'),
      Buffer.from('PILA'),
      Buffer.from('XXXXXXXX'),
      Buffer.from('PILT'),
    ]) {
      await raw.send(bytes, t.localPort);
    }
    await waitFor(() => t.stats.dropped.malformed === 5 && t.stats.dropped.plaintext === 1, 1000, 'malformed count');
    assert.ok(t.stats.pktsRecv >= 7);
  });
});
