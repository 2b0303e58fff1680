import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { performance } from 'node:perf_hooks';
import type { LocalConn } from '../../src/daemon/local-conn.js';
import { NetStack } from '../../src/daemon/net-stack.js';
import { PilotError } from '../../src/errors.js';
import { coalesceAcks } from '../../src/transport/coalesce-acks.js';
import { Flag, makePacket, Proto, type Packet } from '../../src/protocol/packet.js';
import type { PilotConn } from '../../src/sdk/types.js';
import { startEcho } from '../../src/services/echo.js';
import { type BlockPool, sharedBlockPool } from '../../src/transport/block-pool.js';
import { stackPair } from './stack-pair.js';

const A = { network: 0, node: 10 };
const B = { network: 0, node: 11 };

const pair = (): ReturnType<typeof stackPair> => stackPair(A, B);

/** Records the memory of every block the shared send-block pool hands out until `stop`. */
function watchBlocks(): { blocks: Set<ArrayBufferLike>; stop: () => void } {
  const blocks = new Set<ArrayBufferLike>();
  const take = sharedBlockPool.take;
  sharedBlockPool.take = function (this: BlockPool, bytes: number): Buffer {
    const block = take.call(this, bytes);
    blocks.add(block.buffer);
    return block;
  };
  return { blocks, stop: () => void (sharedBlockPool.take = take) };
}

async function readAll(conn: PilotConn): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of conn) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

describe('in-process network stack', () => {
  it('echoes 3 MB through a stream and closes cleanly both ways', async () => {
    const { a, b, close } = pair();
    await startEcho(b);
    const conn = await a.dial(B, 7);
    const data = Buffer.alloc(3 * 1024 * 1024);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff;
    const reading = readAll(conn);
    conn.end(data);
    const back = await reading;
    assert.equal(back.length, data.length);
    assert.ok(back.equals(data));
    close();
  });

  it('echoes all of 24 MB in order while the dialler reads nothing for a while (the echo holds back, not the data)', async () => {
    const { a, b, close } = pair();
    await startEcho(b);
    const conn = await a.dial(B, 7);
    const data = Buffer.alloc(24 * 1024 * 1024);
    for (let i = 0; i < data.length; i++) data[i] = (i * 13 + (i >> 12)) & 0xff;
    conn.end(data);
    await new Promise((r) => setTimeout(r, 300));
    // Nothing read yet: the echo stopped reading once its sends were refused, so part of the
    // data is still waiting on the dialler's side instead of piling up in the echo.
    assert.ok(conn.writableLength > 0, 'the echo took everything while its answers were not being read');
    const back = await readAll(conn);
    assert.equal(back.length, data.length);
    assert.ok(back.equals(data));
    close();
  });

  it('a writer may reuse its buffer once a write is taken, as with a socket', async () => {
    const { a, b, close } = pair();
    await startEcho(b);
    const conn = await a.dial(B, 7);
    const reading = readAll(conn);
    // Larger than a segment and written faster than they are acknowledged: most of each round is
    // still unsent or in flight when the writer refills the buffer.
    const size = 200 * 1024;
    const rounds = 12;
    const buf = Buffer.alloc(size);
    for (let round = 0; round < rounds; round++) {
      buf.fill(round);
      await new Promise<void>((resolve, reject) => conn.write(buf, (err) => (err ? reject(err) : resolve())));
    }
    conn.end();
    const back = await reading;
    assert.equal(back.length, size * rounds);
    for (let round = 0; round < rounds; round++) {
      const part = back.subarray(round * size, (round + 1) * size);
      assert.ok(part.equals(Buffer.alloc(size, round)), `round ${round} came back as written`);
    }
    close();
  });

  it('echoes through streams on a network that offers no raw service (as over the SDK)', async () => {
    const { a, b, close } = pair();
    await startEcho({
      localAddr: b.localAddr,
      listen: (p) => b.listen(p),
      dial: (x, p, o) => b.dial(x, p, o),
      sendTo: (x, p, d) => b.sendTo(x, p, d),
    });
    const conn = await a.dial(B, 7, { data: Buffer.from('first ') });
    const reading = readAll(conn);
    conn.end('and last');
    assert.equal((await reading).toString(), 'first and last');
    close();
  });

  it('a dial with noDelay has Nagle off from its first segment, and setNoDelay(false) turns it back on', async () => {
    const { a, b, close } = pair();
    await startEcho(b);
    const conn = await a.dial(B, 7, { noDelay: true });
    assert.equal(a.endpoint.connection(conn.id)?.stats.nagle, false);
    conn.setNoDelay?.(true);
    assert.equal(a.endpoint.connection(conn.id)?.stats.nagle, false);
    conn.setNoDelay?.(false);
    assert.equal(a.endpoint.connection(conn.id)?.stats.nagle, true);
    const plain = await a.dial(B, 7);
    assert.equal(a.endpoint.connection(plain.id)?.stats.nagle, true);
    conn.destroy();
    plain.destroy();
    close();
  });

  it('refuses a dial to an unbound port with a refused error', async () => {
    const { a, close } = pair();
    await assert.rejects(a.dial(B, 4242), (err: Error & { code?: string }) => err.code === 'refused');
    close();
  });

  it('a dial nobody answers is told stalled once, then times out; the others keep their own deadlines', async () => {
    const stalled: number[] = [];
    const a = new NetStack({
      localAddr: A,
      transmit: () => undefined,
      dialStallMs: 40,
      onDialStalled: (node) => stalled.push(node),
    });
    const started = performance.now();
    const short = a.dial(B, 7, { timeoutMs: 120 }).then(
      () => assert.fail('a dial into a black hole connected'),
      (err: PilotError) => ({ err, ms: performance.now() - started }),
    );
    const long = a.dial(B, 8, { timeoutMs: 400 }).then(
      () => assert.fail('a dial into a black hole connected'),
      (err: PilotError) => ({ err, ms: performance.now() - started }),
    );
    const first = await short;
    assert.equal(first.err.code, 'timeout');
    assert.ok(first.ms >= 115 && first.ms < 300, `the 120 ms dial failed after ${first.ms} ms`);
    assert.deepEqual(stalled, [B.node, B.node], 'each dial is told stalled once, at 40 ms');
    assert.equal(a.resources().dials, 1, 'the failed dial is gone, the other still waits');
    const second = await long;
    assert.equal(second.err.code, 'timeout');
    assert.ok(second.ms >= 395, `the 400 ms dial failed after ${second.ms} ms`);
    assert.equal(a.resources().dials, 0);
    assert.equal(a.endpoint.connections().length, 0, 'the engine forgot both connections');
    a.close();
  });

  it('sets the engine timer after the turn that sent a SYN, and that timer retransmits it', async () => {
    let syns = 0;
    const a = new NetStack({ localAddr: A, transmit: (p) => void (p.flags & Flag.SYN && syns++) });
    const dial = a.dial(B, 7, { timeoutMs: 10_000 }).catch((err: PilotError) => err);
    assert.equal(syns, 1, 'the SYN is out when dial returns');
    assert.equal(a.resources().timers.engine, 0, 'no timer set up on the way to the tunnel');
    await new Promise((r) => setImmediate(r));
    assert.equal(a.resources().timers.engine, 1, 'the retransmission timer is set by the end of the turn');
    const deadline = performance.now() + 8000;
    while (syns < 2 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.ok(syns >= 2, 'the timer retransmitted the SYN');
    a.close();
    assert.equal(((await dial) as PilotError).code, 'unavailable');
  });

  it('an aborted dial fails at once with the reason, and closing the stack fails the dials still waiting', async () => {
    const a = new NetStack({ localAddr: A, transmit: () => undefined });
    const controller = new AbortController();
    const aborted = a.dial(B, 7, { signal: controller.signal });
    controller.abort(new PilotError('timeout', 'gave up'));
    await assert.rejects(aborted, /gave up/);
    const waiting = a.dial(B, 7);
    a.close();
    await assert.rejects(waiting, (err: PilotError) => err.code === 'unavailable');
    assert.equal(a.resources().dials, 0);
    assert.equal(a.resources().timers.dials, 0, 'no dial timer left armed');
  });

  it('answers a handshake packet once its datagram is read, before the event loop moves on', async () => {
    const toA: Packet[] = [];
    const toB: Packet[] = [];
    let sentNow = 0;
    const a = new NetStack({ localAddr: A, transmit: (p) => void toB.push(p) });
    const b = new NetStack({ localAddr: B, transmit: (p) => void toA.push(p), transmitNow: () => void sentNow++ });
    a.setPeerTakesSynData(B.node, true);
    await startEcho(b);
    let readAtOpen: string | undefined;
    const dial = a.dialRaw(
      B,
      7,
      { data: Buffer.from('ping-1') },
      {
        opened: (conn) => {
          readAtOpen = Buffer.from(conn.read(100) ?? []).toString();
        },
        readable: () => undefined,
        writable: () => undefined,
        end: () => undefined,
      },
    );
    const syn = toB.shift() as Packet;
    assert.equal(syn.flags, Flag.SYN);
    let answeredFirst = false;
    const turnEnd = (): Promise<void> => new Promise((r) => setImmediate(r));
    const answered = turnEnd().then(() => answeredFirst);
    b.handlePacket(syn);
    process.nextTick(() => {
      answeredFirst = toA.length > 0 && sentNow === 1;
    });
    assert.equal(await answered, true, 'the SYN was answered only after the event loop moved on');
    // The echo ran, and its answer follows the SYN-ACK to the tunnel (one frame).
    assert.deepEqual(
      toA.map((p) => [p.flags, Buffer.from(p.payload).toString()]),
      [
        [Flag.SYN | Flag.ACK, ''],
        [Flag.ACK, 'ping-1'],
      ],
    );
    let connectedFirst = false;
    const connected = turnEnd().then(() => connectedFirst);
    void dial.then(() => {
      connectedFirst = true;
    });
    // Both packets of the answer's datagram, as the tunnel hands them over.
    for (const p of toA) a.handlePacket(p);
    assert.equal(await connected, true, 'the dial completed only after the event loop moved on');
    assert.equal(readAtOpen, 'ping-1', 'the dial learnt its connection before the bytes that came with it');
    a.close();
    b.close();
  });

  it('delivers datagrams and loops packets to its own address', async () => {
    const { a, b, close } = pair();
    const got = new Promise((resolve) => b.onDatagram(resolve));
    await a.sendTo(B, 5000, Buffer.from('hi'));
    const d = (await got) as { data: Buffer; dstPort: number; srcAddr: typeof A };
    assert.equal(d.data.toString(), 'hi');
    assert.equal(d.dstPort, 5000);
    assert.deepEqual(d.srcAddr, A);
    await startEcho(a);
    const self = await a.dial(A, 7);
    const reading = readAll(self);
    self.end('me');
    assert.equal((await reading).toString(), 'me');
    close();
  });

  it("writeOwned sends the caller's buffer itself, without a send block", async () => {
    const { a, b, close } = pair();
    await startEcho(b);
    const conn = await a.dial(B, 7);
    const taken = watchBlocks();
    try {
      const reading = readAll(conn);
      const data = Buffer.alloc(256 * 1024, 5);
      (conn as LocalConn).writeOwned(data);
      assert.equal(taken.blocks.size, 0, 'the write was queued without a copy into a block');
      conn.write(Buffer.alloc(100 * 1024, 6));
      assert.ok(taken.blocks.size > 0, 'a plain write is copied');
      conn.end();
      assert.ok((await reading).equals(Buffer.concat([data, Buffer.alloc(100 * 1024, 6)])));
    } finally {
      taken.stop();
      close();
    }
  });

  it('loops packets back to its own address with payloads of their own, not views of send blocks', async () => {
    const { a, close } = pair();
    const { blocks, stop } = watchBlocks();
    const looped: Uint8Array[] = [];
    const handle = a.handlePacket.bind(a);
    a.handlePacket = (p: Packet): void => {
      if (p.payload.length > 0) looped.push(p.payload);
      handle(p);
    };
    try {
      await startEcho(a);
      const self = await a.dial(A, 7);
      const reading = readAll(self);
      // Once acknowledged, a block is reused while the receiving side may still hold what it got.
      self.end(Buffer.alloc(96 * 1024, 7));
      assert.ok((await reading).equals(Buffer.alloc(96 * 1024, 7)));
      assert.ok(blocks.size > 0, 'the writes went through send blocks');
      assert.ok(looped.length > 0);
      assert.ok(looped.every((payload) => !blocks.has(payload.buffer)));
    } finally {
      stop();
      close();
    }
  });

  it('serves connections to a listener iterated with for await', async () => {
    const { a, b, close } = pair();
    const listener = await b.listen(80);
    const served = (async () => {
      for await (const conn of listener) {
        conn.end(`port ${conn.localPort} from ${conn.remoteAddr.node}`);
        break;
      }
    })();
    const conn = await a.dial(B, 80);
    conn.end();
    assert.equal((await readAll(conn)).toString(), 'port 80 from 10');
    await served;
    assert.equal(listener.isClosed, true);
    assert.equal(b.isBound(80), false);
    close();
  });
});

describe('capabilities of a peer', () => {
  it('a capability advert lets connections with the node advertise a zero window; forgetting it does not', () => {
    const stack = new NetStack({ localAddr: A, transmit: () => {} });
    assert.equal(
      stack.endpoint.peerHonoursZeroWindow(B.node),
      false,
      'any peer may be the reference, which reads window 0 as no limit',
    );
    stack.setPeerSegmentSize(B.node, 4096);
    assert.equal(stack.endpoint.peerHonoursZeroWindow(B.node), true);
    stack.setPeerSegmentSize(B.node, 61_440);
    assert.equal(stack.endpoint.peerHonoursZeroWindow(B.node), true);
    stack.setPeerSegmentSize(B.node, 0);
    assert.equal(stack.endpoint.peerHonoursZeroWindow(B.node), false);
    stack.close();
  });
});

describe('coalesceAcks', () => {
  const ack = (node: number, dstPort: number, srcPort: number, n: number, payload = 0): Packet =>
    makePacket({
      flags: Flag.ACK,
      protocol: Proto.Stream,
      src: A,
      dst: { network: 0, node },
      srcPort,
      dstPort,
      seq: 1,
      ack: n,
      window: 8,
      payload: Buffer.alloc(payload),
    });

  it('drops pure ACKs superseded later in the batch on the same connection only', () => {
    const batch = [
      ack(11, 1002, 50000, 100),
      ack(11, 1002, 50001, 100),
      ack(12, 1002, 50000, 100),
      ack(11, 1002, 50000, 200),
      ack(11, 1002, 50000, 300, 10),
    ];
    const kept = coalesceAcks(batch);
    assert.deepEqual(
      kept,
      [batch[1], batch[2], batch[4]],
      'other ports and other nodes keep their ACKs; data is never dropped',
    );
  });

  it('keeps duplicate ACKs (a Go sender counts them) and ACKs across sequence wrap-around', () => {
    const dups = [ack(11, 7, 9, 500), ack(11, 7, 9, 500), ack(11, 7, 9, 500)];
    assert.equal(coalesceAcks(dups), dups);
    const wrap = [ack(11, 7, 9, 0xffff_fff0), ack(11, 7, 9, 0x10)];
    assert.deepEqual(coalesceAcks(wrap), [wrap[1]]);
  });
});
