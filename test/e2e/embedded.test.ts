import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, request } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createNode, type EmbeddedNode, type PilotNode } from '../../src/index.js';
import { silentLogger } from '../../src/log.js';
import { inbox, sendMessage } from '../../src/sdk/dataexchange.js';
import { Driver } from '../../src/sdk/driver.js';
import { publish, subscribe } from '../../src/sdk/events.js';
import { createConnection, serveHttp } from '../../src/sdk/http.js';
import { Tasks } from '../../src/sdk/tasks.js';
import { agentEnv, ctl, errorEnvelope } from './cli-harness.js';
import { Cluster, type DaemonHandle } from './cluster.js';
import { until } from '../wait.js';

function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => parts.push(chunk));
    stream.once('end', () => resolve(Buffer.concat(parts)));
    stream.once('error', reject);
  });
}

/** A node under test and where its files live. */
interface Peer {
  readonly node: PilotNode;
  readonly home: string;
}

let nextPort = 6100;

/**
 * One scenario, written against PilotNode only: `a` and `b` become trusted, then `a` reaches `b`
 * by echo, a custom port, a datagram, a data exchange message and an event. Run with a daemon's
 * Driver and with embedded nodes on either side.
 */
async function scenario(a: Peer, b: Peer): Promise<void> {
  const [ia, ib] = await Promise.all([a.node.info(), b.node.info()]);
  assert.equal(ia.node_id, a.node.localAddr.node);
  assert.equal(ib.node_id, b.node.localAddr.node);

  await a.node.handshake(ib.node_id, 'embedded e2e');
  await until('request at b', async () =>
    (await b.node.pending()).some((p) => p.node_id === ia.node_id) ? true : undefined,
  );
  await b.node.approve(ia.node_id);
  await until('a trusts b', async () =>
    (await a.node.trusted()).some((t) => t.node_id === ib.node_id) ? true : undefined,
  );

  const echo = await a.node.dial(ib.address, 7);
  const data = Buffer.alloc(256 * 1024);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff;
  const back = readAll(echo);
  echo.end(data);
  assert.ok((await back).equals(data), 'echo is byte-exact');

  const port = nextPort++;
  const listener = await b.node.listen(port);
  const served = (async () => {
    for await (const conn of listener) {
      const msg = await readAll(conn);
      conn.end(`got ${msg.toString()} from ${conn.remoteAddr.node}`);
      break;
    }
  })();
  const conn = await a.node.dial(ib.address, port);
  const reply = readAll(conn);
  conn.end('hello');
  assert.equal((await reply).toString(), `got hello from ${ia.node_id}`);
  await served;
  await listener.close();

  const dport = nextPort++;
  const received = (async () => {
    for await (const d of b.node.datagrams({ port: dport })) return d;
    return undefined;
  })();
  const d = await until('datagram', async () => {
    await a.node.sendTo(ib.address, dport, Buffer.from('dgram'));
    return Promise.race([received, new Promise<undefined>((r) => setTimeout(() => r(undefined), 100))]);
  });
  assert.equal(d.data.toString(), 'dgram');
  assert.equal(d.srcAddr.node, ia.node_id);

  const text = `message from ${ia.node_id}`;
  const sent = await sendMessage(a.node, ib.address, text);
  assert.equal(sent.bytes, Buffer.byteLength(text));
  const messages = await inbox({ home: b.home });
  assert.ok(
    messages.some((m) => m.data.toString() === text),
    'the message is in the peer home inbox',
  );

  const topic = `e2e.${ia.node_id}`;
  const sub = await subscribe(b.node, ib.address, topic);
  const first = sub.next();
  const event = await until('event', async () => {
    await publish(a.node, ib.address, topic, 'event data');
    return Promise.race([first, new Promise<undefined>((r) => setTimeout(() => r(undefined), 200))]);
  });
  assert.equal(event.done, false);
  assert.equal(event.value?.topic, topic);
  assert.equal(event.value?.data.toString(), 'event data');
  await sub.return?.();

  assert.ok(Array.isArray(await new Tasks(a.node).tasks()), 'the local task service answers');
}

describe('embedded nodes and a daemon on one network', () => {
  let cluster: Cluster;
  let daemon: DaemonHandle;
  let driver: Driver;
  let e1: EmbeddedNode;
  let e2: EmbeddedNode;
  const homes = { e1: '', e2: '' };

  const embedded = (home: string): Promise<EmbeddedNode> =>
    createNode({
      home,
      registry: cluster.registry,
      beacon: `127.0.0.1:${cluster.beaconPort}`,
      listen: '127.0.0.1:0',
      log: silentLogger(),
    });

  before(async () => {
    cluster = await Cluster.start();
    homes.e1 = join(cluster.dir, 'e1');
    homes.e2 = join(cluster.dir, 'e2');
    daemon = await cluster.addDaemon('d');
    driver = await Driver.connect(daemon.socket);
    [e1, e2] = await Promise.all([embedded(homes.e1), embedded(homes.e2)]);
  });

  after(async () => {
    await Promise.all([driver?.close(), e1?.close(), e2?.close()]);
    await cluster?.stop();
  });

  it('registers an embedded node with the identity of its home', async () => {
    const info = await e1.info();
    assert.equal(info.identity, true);
    assert.notEqual(info.node_id, 0);
    assert.equal(info.node_id, e1.localAddr.node);
    assert.equal((await e1.health()).ok, true);
  });

  it('runs one scenario from an embedded node to a daemon', () =>
    scenario({ node: e1, home: homes.e1 }, { node: driver, home: daemon.home }));

  it('runs the same scenario from a daemon to an embedded node', () =>
    scenario({ node: driver, home: daemon.home }, { node: e2, home: homes.e2 }));

  it('runs the same scenario between two embedded nodes', () =>
    scenario({ node: e2, home: homes.e2 }, { node: e1, home: homes.e1 }));

  it('answers a SYN-ACK once the application has seen it: a ping costs the dialler two datagrams', async () => {
    const sealed = async (): Promise<number> => {
      const sent = (await e2.info()).frames_sent;
      return (sent?.PILS ?? 0) + (sent?.PILM ?? 0);
    };
    const ping = async (i: number): Promise<void> => {
      const conn = await e2.dial(e1.localAddr, 7, { data: Buffer.from(`ping-${i}`) });
      await new Promise<void>((resolve) => conn.once('data', () => resolve()));
      // As pilotctl ping does: the echo is in, the stream is reset.
      conn.destroy();
    };
    await ping(-1);
    await new Promise((r) => setTimeout(r, 100));
    const pings = 20;
    const before = await sealed();
    for (let i = 0; i < pings; i++) {
      await ping(i);
      // Each ping in a turn of its own (back to back, a reset and the next SYN share a datagram).
      await new Promise((r) => setTimeout(r, 5));
    }
    await new Promise((r) => setTimeout(r, 100));
    const frames = (await sealed()) - before;
    // The SYN carrying the bytes, then the ACK of the SYN-ACK with the RST of the destroy. An ACK
    // sealed before the dial's promise chain reached the application would leave alone: three.
    assert.ok(frames >= 2 * pings && frames <= 2 * pings + 2, `sealed datagrams for ${pings} pings: ${frames}`);
  });

  it("serves http.createServer() on an embedded node's listener, fetched through a daemon", async () => {
    const server = createServer((req, res) => res.end(`embedded http ${req.url}`));
    const listener = await serveHttp(e1, 8080, server);
    const host = (await e1.info()).address;
    const body = await new Promise<string>((resolve, reject) => {
      const req = request(
        { host, port: 8080, path: '/x', createConnection: createConnection(driver) },
        (res) => void readAll(res).then((b) => resolve(b.toString()), reject),
      );
      req.on('error', reject);
      req.end();
    });
    assert.equal(body, 'embedded http /x');
    await listener.close();
  });

  it('refuses a home whose identity a daemon or another node holds, with a clear error', async () => {
    for (const home of [daemon.home, homes.e1]) {
      await assert.rejects(embedded(home), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'already_exists');
        assert.match(err.message, /in use by a running pilot node/);
        return true;
      });
    }
  });

  it('pilotctl daemon start refuses a home an embedded node holds, saying so', async () => {
    const agent = agentEnv(cluster.dir, 'e1', cluster.registry, `127.0.0.1:${cluster.beaconPort}`);
    const err = errorEnvelope(await ctl(agent, ['--json', 'daemon', 'start']));
    assert.equal(err.code, 'already_exists');
    assert.match(err.message, /in use by a running pilot node \(process \d+\)/);
  });

  it('moves a home from embedded to daemon mode with the same address', async () => {
    const id = e2.localAddr.node;
    await e2.close();
    assert.equal(e2.closed, true);
    await assert.rejects(e2.info(), (err: Error & { code?: string }) => err.code === 'not_running');
    const moved = await cluster.addDaemon('e2');
    assert.equal(moved.nodeId, id);
  });
});

describe('an embedded node in a process of its own', () => {
  it('lets the process exit after close(), with nothing left running', async () => {
    const cluster = await Cluster.start();
    try {
      const script = `
        const { createNode } = await import(${JSON.stringify(join(import.meta.dirname, '../../src/index.ts'))});
        const node = await createNode({
          home: ${JSON.stringify(join(cluster.dir, 'solo'))},
          registry: ${JSON.stringify(cluster.registry)},
          beacon: '127.0.0.1:${cluster.beaconPort}',
          listen: '127.0.0.1:0',
        });
        const l = await node.listen(5555);
        const c = await node.dial(node.localAddr, 7);
        c.write('x');
        await new Promise((r) => c.once('data', r));
        console.log('node ' + node.localAddr.node);
        await node.close();
      `;
      const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (b: Buffer) => (out += b.toString()));
      child.stderr.on('data', (b: Buffer) => (out += b.toString()));
      const code = await new Promise<number | null>((resolve) => {
        const timer = setTimeout(() => {
          child.kill('SIGKILL');
          resolve(null);
        }, 20_000);
        child.once('exit', (c) => {
          clearTimeout(timer);
          resolve(c);
        });
      });
      assert.equal(code, 0, `the process exits by itself after close(); output:\n${out}`);
      assert.match(out, /node \d+/);
    } finally {
      await cluster.stop();
    }
  });
});
