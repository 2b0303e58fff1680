import assert from 'node:assert/strict';
import { createServer, request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { Driver } from '../../src/sdk/driver.js';
import { createConnection, serveHttp } from '../../src/sdk/http.js';
import type { Cluster, DaemonHandle } from './cluster.js';
import { postgresCluster, sqliteCluster } from './registry-postgres-kind.js';
import { until } from '../wait.js';

/** Reads to the end without destroying the stream (a `for await` would, and a Duplex could not answer after). */
function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => parts.push(chunk));
    stream.once('end', () => resolve(Buffer.concat(parts)));
    stream.once('error', reject);
  });
}

/** a asks, b approves; returns once both sides trust each other. */
async function makeTrust(da: Driver, db: Driver, a: DaemonHandle, b: DaemonHandle): Promise<number> {
  const started = Date.now();
  await da.handshake(b.nodeId, 'e2e test');
  await until('pending request at b', async () =>
    (await db.pending()).some((p) => p.node_id === a.nodeId) ? true : undefined,
  );
  const reached = Date.now() - started;
  await db.approve(a.nodeId);
  await until('a trusts b', async () => ((await da.trusted()).some((t) => t.node_id === b.nodeId) ? true : undefined));
  return reached;
}

// The same network on one SQLite registry and on two registry processes sharing PostgreSQL.
for (const kind of [sqliteCluster, postgresCluster(2)])
  describe(`two daemons, a registry and a beacon on loopback (${kind.name})`, { skip: kind.skip ?? false }, () => {
    let cluster: Cluster;
    let a: DaemonHandle;
    let b: DaemonHandle;
    let c: DaemonHandle;
    let da: Driver;
    let db: Driver;
    let dc: Driver;

    before(async () => {
      cluster = await kind.start();
      [a, b, c] = await Promise.all([
        cluster.addDaemon('a'),
        cluster.addDaemon('b'),
        cluster.addDaemon('c', ['-no-echo']),
      ]);
      [da, db, dc] = await Promise.all([Driver.connect(a.socket), Driver.connect(b.socket), Driver.connect(c.socket)]);
    });

    after(async () => {
      await Promise.all([da?.close(), db?.close(), dc?.close()]);
      await cluster?.stop();
      await kind.stop();
    });

    it('registers every daemon with its own permanent address', async () => {
      const info = await da.info();
      assert.equal(info.node_id, a.nodeId);
      assert.equal(info.address, a.address);
      assert.equal(info.encrypt, true);
      assert.notEqual(a.nodeId, b.nodeId);
    });

    it('refuses connections and datagrams from a peer that is not trusted', async () => {
      await assert.rejects(da.dial(b.address, 7, { timeoutMs: 5000 }), (err: Error & { code?: string }) =>
        ['refused', 'untrusted', 'connection_failed'].includes(err.code ?? ''),
      );
    });

    it('delivers a handshake in well under a second, and approval makes both sides trust', async () => {
      const reached = await makeTrust(da, db, a, b);
      assert.ok(reached < 1000, `handshake took ${reached} ms to reach the peer`);
      assert.ok((await db.trusted()).some((t) => t.node_id === a.nodeId));
    });

    it('echoes through an encrypted tunnel (ping) and carries a 5 MB stream byte-exact', async () => {
      const conn = await da.dial(b.address, 7);
      const data = Buffer.alloc(5 * 1024 * 1024);
      for (let i = 0; i < data.length; i++) data[i] = i & 0xff;
      const back = readAll(conn);
      conn.end(data);
      const got = await back;
      assert.equal(got.length, data.length);
      assert.ok(got.equals(data));
      const info = await da.info();
      assert.ok(info.peer_list.some((p) => p.node_id === b.nodeId && p.encrypted && p.authenticated));
    });

    it('uses large segments between pilot-ts daemons on one host (capability advert on port 1)', async () => {
      const conn = await da.dial(b.address, 7);
      const data = Buffer.alloc(2 * 1024 * 1024, 0x5a);
      let got = 0;
      const echoed = new Promise<void>((resolve) =>
        conn.on('data', (chunk: Buffer) => {
          got += chunk.length;
          if (got >= data.length) resolve();
        }),
      );
      conn.write(data);
      await echoed;
      const entry = (await da.info()).conn_list.find((c) => c.remote_port === 7 && c.bytes_sent === data.length);
      const served = (await db.info()).conn_list.find((c) => c.local_port === 7 && c.bytes_recv === data.length);
      conn.end();
      assert.ok(entry, 'the echo connection is listed');
      assert.equal(entry.mss, 61_440);
      assert.equal(entry.nagle, false, 'an application connection runs without Nagle (the SDK joins writes itself)');
      assert.equal(served?.nagle, true, 'the echo service side keeps the default');
      // Far fewer segments than 4096-byte segments would need.
      assert.ok(Number(entry.segs_sent) < data.length / 4096 / 4, `segments sent: ${entry.segs_sent}`);
    });

    it('sends the first bytes of a dial with it (DialData), in order with later writes', async () => {
      const conn = await da.dial(b.address, 7, { data: Buffer.from('first|') });
      const back = readAll(conn);
      conn.end('second');
      assert.equal((await back).toString(), 'first|second');
      const before = (await da.info()).conn_list.length;
      await assert.rejects(
        da.dial(b.address, 4321, { data: Buffer.from('nobody listens'), timeoutMs: 5000 }),
        (err: Error & { code?: string }) => ['refused', 'connection_failed'].includes(err.code ?? ''),
      );
      assert.ok((await da.info()).conn_list.length <= before, 'a refused DialData leaves no connection behind');
    });

    it('seals the packets of many connections to one peer together (PILM frames)', async () => {
      const before = (await da.info()).frames_sent?.PILM ?? 0;
      const conns = await Promise.all(Array.from({ length: 8 }, () => da.dial(b.address, 7)));
      const echoed = conns.map((c) => new Promise<void>((resolve) => c.once('data', () => resolve())));
      // One write per connection in the same turn: their segments leave in one flush.
      for (const c of conns) c.write('x');
      await Promise.all(echoed);
      const after = (await da.info()).frames_sent?.PILM ?? 0;
      for (const c of conns) c.end();
      assert.ok(after > before, `PILM frames sent: ${before} → ${after}`);
    });

    it('serves a custom port from the SDK and delivers datagrams between trusted peers', async () => {
      const listener = await db.listen(5000);
      const served = (async () => {
        for await (const conn of listener) {
          const msg = await readAll(conn);
          conn.end(`got ${msg.toString()} from ${conn.remotePort > 0 ? 'a' : '?'}`);
          break;
        }
      })();
      const conn = await da.dial(b.address, 5000);
      const reply = readAll(conn);
      conn.end('hello');
      assert.equal((await reply).toString(), 'got hello from a');
      await served;

      const received = (async () => {
        for await (const d of db.datagrams({ port: 6000 })) return d;
        return undefined;
      })();
      await until('datagram', async () => {
        await da.sendTo(b.address, 6000, Buffer.from('dgram'));
        return (
          (await Promise.race([received, new Promise<undefined>((r) => setTimeout(() => r(undefined), 100))])) ??
          undefined
        );
      });
      const d = await received;
      assert.equal(d?.data.toString(), 'dgram');
      assert.equal(d?.srcAddr.node, a.nodeId);
    });

    it('serves http.createServer over a pilot port and fetches through pilot', async () => {
      const server = createServer((req, res) => res.end(`pilot http ${req.url}`));
      const stop = await serveHttp(db, 8080, server);
      const body = await new Promise<string>((resolve, reject) => {
        const req = request(
          { host: b.address, port: 8080, path: '/hello', createConnection: createConnection(da) },
          (res) => {
            readAll(res).then((b) => resolve(b.toString()), reject);
          },
        );
        req.on('error', reject);
        req.end();
      });
      assert.equal(body, 'pilot http /hello');
      await stop.close();
    });

    it('auto-approves mutual handshakes, and a disabled service refuses', async () => {
      await Promise.all([da.handshake(c.nodeId, 'mutual'), dc.handshake(a.nodeId, 'mutual')]);
      await until('mutual trust', async () =>
        (await da.trusted()).some((t) => t.node_id === c.nodeId) &&
        (await dc.trusted()).some((t) => t.node_id === a.nodeId)
          ? true
          : undefined,
      );
      await assert.rejects(
        da.dial(c.address, 7, { timeoutMs: 5000 }),
        (err: Error & { code?: string }) => err.code === 'refused' || err.code === 'connection_failed',
      );
    });

    it('keeps identity, address and trust across a daemon restart, and traffic resumes', async () => {
      const before = b.nodeId;
      await db.setHostname('bee');
      await db.close();
      await cluster.restartDaemon(b);
      db = await Driver.connect(b.socket);
      assert.equal(b.nodeId, before);
      assert.equal((await db.info()).hostname, 'bee');
      assert.equal((await da.resolveHostname('bee')).node_id, before);
      assert.ok((await db.trusted()).some((t) => t.node_id === a.nodeId));
      await until(
        'echo after restart',
        async () => {
          const conn = await da.dial(b.address, 7, { timeoutMs: 2000 });
          const back = readAll(conn);
          conn.end('again');
          return (await back).toString() === 'again' ? true : undefined;
        },
        10_000,
      );
    });

    it('untrust tears the peer down on both sides', async () => {
      await da.untrust(b.nodeId);
      await until('b forgets a', async () =>
        (await db.trusted()).some((t) => t.node_id === a.nodeId) ? undefined : true,
      );
      await assert.rejects(da.dial(b.address, 7, { timeoutMs: 3000 }));
    });

    it('lets a dial through the moment trust shows, however often trust is made and revoked', async () => {
      let lastRevoke = Math.floor(Date.now() / 1000); // the test before revoked too
      for (let round = 0; round < 6; round++) {
        await da.handshake(b.nodeId, `round ${round}`);
        await until('the request at b', async () =>
          (await db.pending()).some((p) => p.node_id === a.nodeId) ? true : undefined,
        );
        await db.approve(a.nodeId);
        await until('a trusting b', async () =>
          (await da.trusted()).some((t) => t.node_id === b.nodeId) ? true : undefined,
        );
        // No retry: the handshake's own dial was refused a moment ago, and that must not linger;
        // nor may the key exchange with the re-added peer wait out a rate limit (a lost SYN = 1 s).
        const started = Date.now();
        const conn = await da.dial(b.address, 7, { timeoutMs: 3000 });
        conn.destroy();
        assert.ok(Date.now() - started < 800, `dial took ${Date.now() - started} ms`);
        // Port-444 messages carry a timestamp in seconds: the same revoke again within its second is
        // indistinguishable from a replay and dropped, so each round's revoke waits for a new second.
        while (Math.floor(Date.now() / 1000) === lastRevoke) await new Promise((r) => setTimeout(r, 20));
        lastRevoke = Math.floor(Date.now() / 1000);
        await da.untrust(b.nodeId);
        await until('b forgets a', async () =>
          (await db.trusted()).some((t) => t.node_id === a.nodeId) ? undefined : true,
        );
      }
    });
  });
