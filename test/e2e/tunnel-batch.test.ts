import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Tunnel } from '../../src/tunnel/index.js';
import { encodePilmHeader, MAGIC_PILM } from '../../src/protocol/tunnel.js';
import {
  closeAfterAll,
  collect,
  connectRawPeer,
  datagram,
  KeyDirectory,
  openNode,
  TapProxy,
} from './tunnel-harness.js';
import { waitFor } from '../wait.js';

const track = closeAfterAll();

/** Two tunnels (nodes 1 and 2) whose traffic from A to B passes a recording proxy, keys exchanged. */
async function pairThroughProxy(): Promise<{
  a: Tunnel;
  b: Tunnel;
  proxy: TapProxy;
  atB: { from: number; text: string }[];
}> {
  const dir = new KeyDirectory();
  const a = track(await openNode(dir, 1));
  const b = track(await openNode(dir, 2));
  const proxy = await TapProxy.between(a.localPort, b.localPort);
  track(proxy.raw);
  const atB = collect(b);
  a.addPeer(2, proxy.endpoint);
  a.send(2, datagram(1, 2, 'hello'));
  await waitFor(() => atB.length === 1, 2000, 'key exchange');
  return { a, b, proxy, atB };
}

describe('tunnel: PILM batches (pilot-ts peers only)', () => {
  it('sends one synchronous run of packets as one PILM frame, delivered in order', async () => {
    const { a, proxy, atB } = await pairThroughProxy();
    a.setBatching(2, true);
    const texts = Array.from({ length: 50 }, (_, i) => `event ${i}`);
    for (const t of texts) a.send(2, datagram(1, 2, t));
    await waitFor(() => atB.length === 51, 2000, 'batched packets');
    assert.deepEqual(
      atB.slice(1).map((g) => g.text),
      texts,
    );
    assert.equal(proxy.framesOf('PILM').length, 1);
    assert.equal(proxy.framesOf('PILS').length, 1, 'only the packet before batching was on');
  });

  it('sends a lone packet as a PILM of one, and a packet too large to share a datagram on its own', async () => {
    const { a, proxy, atB } = await pairThroughProxy();
    a.setBatching(2, true);
    a.send(2, datagram(1, 2, 'alone'));
    await waitFor(() => atB.length === 2, 2000, 'lone packet');
    assert.equal(proxy.framesOf('PILM').length, 1);
    const big = 'x'.repeat(65_000 - 36 - 36 + 1);
    a.send(2, datagram(1, 2, 'small 1'));
    a.send(2, datagram(1, 2, big));
    a.send(2, datagram(1, 2, 'small 2'));
    await waitFor(() => atB.length === 5, 2000, 'mixed run');
    assert.deepEqual(
      atB.slice(2).map((g) => (g.text.length > 100 ? 'big' : g.text)),
      ['small 1', 'big', 'small 2'],
    );
    assert.equal(proxy.framesOf('PILM').length, 4, 'order kept: small 1, big and small 2 each in their own frame');
    assert.equal(proxy.framesOf('PILS').length, 1, 'only the packet before batching was on');
    assert.ok(Math.max(...proxy.framesOf('PILM').map((f) => f.length)) <= 65_001);
  });

  it('never throws for a packet no batch can carry: sent alone, or dropped and counted when UDP cannot carry it', async () => {
    const { a, proxy, atB } = await pairThroughProxy();
    a.setBatching(2, true);
    // 65,435 bytes is the most a PILM of one carries in an IPv4 datagram (72 bytes of overhead).
    for (const size of [65_435, 65_436, 65_501, 65_502, 65_535]) a.send(2, datagram(1, 2, 'z'.repeat(size)));
    a.send(2, datagram(1, 2, 'after'));
    await waitFor(() => atB.length === 3, 2000, 'the packets that fit');
    assert.deepEqual(
      atB.slice(1).map((g) => (g.text.length > 100 ? g.text.length : g.text)),
      [65_435, 'after'],
    );
    assert.equal(a.stats.dropped.too_large, 4);
    assert.equal(a.stats.dropped.batch_error, undefined);
    assert.ok(Math.max(...proxy.framesOf('PILM').map((f) => f.length)) <= 65_507);
  });

  it('refuses a replayed PILM, a PILM relabelled as PILS, and a batch with a bad length', async () => {
    const made = await connectRawPeer();
    const { t, peer, got } = made;
    track(t);
    track(peer.raw);
    await peer.raw.send(peer.pilm([datagram(3, 1, 'one'), datagram(3, 1, 'two')]), t.localPort);
    await waitFor(() => got.length === 2, 1000, 'crafted batch');
    const frame = peer.pilm([datagram(3, 1, 'three'), datagram(3, 1, 'four')]);
    const relabelled = Buffer.from(frame);
    relabelled.write('PILS', 0, 'latin1');
    await peer.raw.send(relabelled, t.localPort);
    await waitFor(() => t.stats.dropped.auth_failed === 1, 1000, 'relabelled frame refused');
    await peer.raw.send(frame, t.localPort);
    await peer.raw.send(frame, t.localPort);
    await waitFor(() => t.stats.dropped.replay === 1, 1000, 'replay refused');
    assert.deepEqual(
      got.map((g) => g.text),
      ['one', 'two', 'three', 'four'],
    );

    // A batch whose inner packet is spoofed loses only that packet.
    await peer.raw.send(peer.pilm([datagram(4, 1, 'spoofed'), datagram(3, 1, 'five')]), t.localPort);
    await waitFor(() => got.length === 5, 1000, 'valid half of the batch');
    assert.equal(t.stats.dropped.spoofed_source, 1);
    // An authenticated body that is not a valid batch is refused whole.
    const session = peer.session;
    assert.ok(session);
    const { nonce, chunks } = session.sealParts([Buffer.from([0x00, 0x40, 0x01])], MAGIC_PILM);
    await peer.raw.send(Buffer.concat([encodePilmHeader(3, nonce), ...chunks]), t.localPort);
    await waitFor(() => t.stats.dropped.malformed === 1, 1000, 'malformed batch');
    assert.equal(got.length, 5);
  });

  it('flushNow sends what waits for the end of the turn at once, once per turn, in order', async () => {
    const { a, proxy, atB } = await pairThroughProxy();
    a.setBatching(2, true);
    const before = a.stats.pktsSent;
    a.send(2, datagram(1, 2, 'syn 1'));
    a.send(2, datagram(1, 2, 'syn 2'));
    assert.equal(a.stats.pktsSent, before, 'batched packets wait for the end of the turn');
    a.flushNow();
    assert.equal(a.stats.pktsSent, before + 1, 'one frame left inside the call');
    a.send(2, datagram(1, 2, 'syn 3'));
    a.send(2, datagram(1, 2, 'syn 4'));
    a.flushNow();
    assert.equal(
      a.stats.pktsSent,
      before + 1,
      'a burst: the packets after the first flush wait for the end of the turn',
    );
    await waitFor(() => atB.length === 5, 2000, 'the burst');
    assert.equal(proxy.framesOf('PILM').length, 2, 'two frames for the four packets');
    await new Promise((r) => setImmediate(r));
    const next = a.stats.pktsSent;
    a.send(2, datagram(1, 2, 'next turn'));
    a.flushNow();
    assert.equal(a.stats.pktsSent, next + 1, 'in a new turn a flushNow sends at once again');
    await waitFor(() => atB.length === 6, 2000, 'all packets');
    assert.deepEqual(
      atB.slice(1).map((g) => g.text),
      ['syn 1', 'syn 2', 'syn 3', 'syn 4', 'next turn'],
    );
  });

  it('sends plain PILS frames until batching is turned on', async () => {
    const { a, proxy, atB } = await pairThroughProxy();
    for (let i = 0; i < 5; i++) a.send(2, datagram(1, 2, `p${i}`));
    await waitFor(() => atB.length === 6, 2000, 'packets');
    assert.equal(proxy.framesOf('PILM').length, 0);
    assert.equal(proxy.framesOf('PILS').length, 6);
  });
});
