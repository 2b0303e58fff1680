import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import type { PilotError } from '../../src/errors.js';
import { MAX_SEND_CHUNK, type Conn } from '../../src/sdk/conn.js';
import { DATAGRAM_QUEUE_SIZE } from '../../src/sdk/datagram-inbox.js';
import { Driver } from '../../src/sdk/driver.js';
import { PEER_ADDR, TestDaemon, type PeerClient } from './sdk-test-peer.js';
import { waitFor } from '../wait.js';

async function readAll(conn: Conn): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of conn) parts.push(chunk as Buffer);
  return Buffer.concat(parts);
}

function pattern(size: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  for (let i = 0; i < size; i++) b[i] = (i * 7) & 0xff;
  return b;
}

describe('sdk Conn, Listener and datagrams', () => {
  let daemon: TestDaemon;
  let server: Driver;
  let client: Driver;
  before(async () => {
    daemon = await TestDaemon.start();
    server = await Driver.connect(daemon.path);
    client = await Driver.connect(daemon.path);
  });
  after(async () => {
    await client.close();
    await server.close();
    await daemon.close();
  });

  it('streams both ways; closing one side ends the other', async () => {
    const listener = await server.listen(7);
    listener.on('connection', (conn) => conn.pipe(conn));
    const conn = await client.dial('0:0000.0000.0005', 7);
    assert.equal(conn.remotePort, 7);
    let echoed = '';
    conn.on('data', (d: Buffer) => (echoed += d.toString()));
    conn.write('hello ');
    conn.write('pilot');
    await waitFor(() => echoed === 'hello pilot');
    conn.end();
    await once(conn, 'close');
    await listener.close();
  });

  it('chunks a 1 MiB write into Send messages of at most 64 KiB and delivers it intact', async () => {
    const listener = await server.listen(1001);
    const data = pattern(1024 * 1024);
    const [accepted] = await Promise.all([
      once(listener, 'connection') as Promise<[Conn]>,
      (async () => {
        const conn = await client.dial(PEER_ADDR, 1001);
        conn.end(data);
      })(),
    ]);
    const received = await readAll(accepted[0]);
    assert.equal(received.length, data.length);
    assert.ok(received.equals(data));
    const ipc = daemon.clients[1]!;
    const sends = ipc.messages.filter((m) => m.msg.cmd === 'Send');
    assert.ok(sends.length >= 16, `${sends.length} Send messages`);
    for (const s of sends) assert.ok(s.length <= MAX_SEND_CHUNK + 5, `message of ${s.length} bytes`);
    await listener.close();
  });

  it('applies backpressure when the daemon stops reading', async () => {
    const listener = await server.listen(1002);
    const acceptedP = once(listener, 'connection') as Promise<[Conn]>;
    const conn = await client.dial(PEER_ADDR, 1002);
    const [accepted] = await acceptedP;
    const ipc = daemon.clients[1]!;
    ipc.socket.pause();
    const chunk = Buffer.alloc(256 * 1024, 1);
    let written = 0;
    while (conn.write(chunk)) {
      written += chunk.length;
      assert.ok(written < 64 * 1024 * 1024, 'write() never reported backpressure');
    }
    written += chunk.length;
    assert.equal(conn.writableNeedDrain, true);
    let got = 0;
    accepted.on('data', (d: Buffer) => (got += d.length));
    ipc.socket.resume();
    await once(conn, 'drain');
    await waitFor(() => got === written, 5000);
    conn.destroy();
    await once(accepted, 'end');
    await listener.close();
  });

  it('destroys a connection whose unread data exceeds the bound', async () => {
    const small = await Driver.connect(daemon.path, { maxUnread: 64 * 1024 });
    try {
      const listener = await small.listen(1003);
      const acceptedP = once(listener, 'connection') as Promise<[Conn]>;
      const conn = await client.dial(PEER_ADDR, 1003);
      const [accepted] = await acceptedP;
      const failed = once(accepted, 'error') as Promise<[PilotError]>;
      conn.write(Buffer.alloc(200 * 1024));
      const [err] = await failed;
      assert.equal(err.code, 'too_large');
      conn.resume();
      await once(conn, 'end');
    } finally {
      await small.close();
    }
  });

  it('rejects an aborted dial with AbortError and closes the connection that arrives later', async () => {
    const dials: PeerClient[] = [];
    daemon.intercept = (peer, msg) => {
      if (msg.cmd !== 'Dial') return false;
      dials.push(peer);
      return true;
    };
    try {
      const ac = new AbortController();
      const dial = client.dial(PEER_ADDR, 80, { signal: ac.signal });
      await waitFor(() => dials.length === 1);
      ac.abort();
      await assert.rejects(dial, { name: 'AbortError' });
      const peer = dials[0]!;
      daemon.write(peer, { cmd: 'DialOK', connId: 4242 });
      await waitFor(() => peer.messages.some((m) => m.msg.cmd === 'Close' && m.msg.connId === 4242));
      await assert.rejects(client.dial(PEER_ADDR, 80, { signal: AbortSignal.abort() }), { name: 'AbortError' });
    } finally {
      daemon.intercept = null;
    }
  });

  it('yields accepted connections from the listener iterator until it closes', async () => {
    const listener = await server.listen(2000);
    await assert.rejects(server.listen(2000), { code: 'already_exists' });
    const dialed = await Promise.all([client.dial(PEER_ADDR, 2000), client.dial(PEER_ADDR, 2000)]);
    const seen: number[] = [];
    for await (const conn of listener) {
      seen.push(conn.localPort);
      conn.destroy();
      if (seen.length === 2) await listener.close();
    }
    assert.deepEqual(seen, [2000, 2000]);
    for (const c of dialed) await once(c.resume(), 'end');
    assert.equal(listener.isClosed, true);
    // The port stays bound at the daemon, so listening again needs no Bind; leaving the loop closes it.
    const binds = daemon.clients[0]!.messages.filter((m) => m.msg.cmd === 'Bind').length;
    const again = await server.listen(2000);
    const late = client.dial(PEER_ADDR, 2000);
    for await (const conn of again) {
      conn.destroy();
      break;
    }
    assert.equal(again.isClosed, true);
    (await late).resume();
    assert.equal(daemon.clients[0]!.messages.filter((m) => m.msg.cmd === 'Bind').length, binds);
  });

  it('keeps at most 256 datagrams for a slow iterator and filters by port', async () => {
    const ac = new AbortController();
    const all = client.datagrams({ signal: ac.signal });
    const only9 = client.datagrams({ port: 9 });
    const peer = daemon.clients[1]!;
    let events = 0;
    client.on('datagram', () => events++);
    for (let i = 0; i < 300; i++)
      daemon.write(peer, {
        cmd: 'RecvFrom',
        srcAddr: PEER_ADDR,
        srcPort: 1,
        dstPort: i % 2 === 0 ? 9 : 10,
        data: Buffer.of(i & 0xff),
      });
    await waitFor(() => events === 300);
    const got: number[] = [];
    const iterator = all[Symbol.asyncIterator]();
    for (let i = 0; i < DATAGRAM_QUEUE_SIZE; i++) {
      const next = await iterator.next();
      assert.equal(next.done, false);
      if (!next.done) got.push(next.value.data[0]!);
    }
    assert.deepEqual(got.slice(0, 3), [0, 1, 2]);
    const pending = iterator.next();
    ac.abort();
    await assert.rejects(pending, { name: 'AbortError' });
    let port9 = 0;
    for await (const d of only9) {
      assert.equal(d.dstPort, 9);
      if (++port9 === 150) break;
    }
    await client.sendTo(PEER_ADDR, 9, Buffer.from('ping'));
  });

  it('emits timeout after inactivity and closes the remote on destroy', async () => {
    const listener = await server.listen(3000);
    const acceptedP = once(listener, 'connection') as Promise<[Conn]>;
    const conn = await client.dial(PEER_ADDR, 3000);
    const [accepted] = await acceptedP;
    let fired = false;
    accepted.setTimeout(30, () => (fired = true));
    await once(accepted, 'timeout');
    assert.ok(fired);
    accepted.setTimeout(0);
    accepted.resume();
    conn.destroy();
    await once(accepted, 'end');
    await listener.close();
  });
});
