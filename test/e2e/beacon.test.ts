import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startHealthServer } from '../../src/beacon/health.js';
import { IpRateLimiter } from '../../src/beacon/ip-limiter.js';
import { NodeTable } from '../../src/beacon/node-table.js';
import { PeerDirectory } from '../../src/beacon/peer-directory.js';
import { BeaconServer } from '../../src/beacon/server.js';
import { loopbackEp, u16, u32, UdpClient } from './beacon-helpers.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const FRAME = '50494c54deadbeef'; // "PILT" + 4 payload bytes

async function withBeacon(
  opts: Partial<Parameters<typeof BeaconServer.start>[0]>,
  fn: (beacon: BeaconServer, clients: UdpClient[]) => Promise<void>,
  clientCount = 3,
): Promise<void> {
  const beacon = await BeaconServer.start({ host: '127.0.0.1', port: 0, ...opts });
  const clients = await Promise.all(Array.from({ length: clientCount }, () => UdpClient.open()));
  try {
    await fn(beacon, clients);
  } finally {
    for (const c of clients) c.close();
    await beacon.close();
  }
}

function three(clients: UdpClient[]): [UdpClient, UdpClient, UdpClient] {
  const [a, b, c] = clients;
  assert.ok(a && b && c);
  return [a, b, c];
}

async function discover(beacon: BeaconServer, client: UdpClient, nodeId: number): Promise<void> {
  await client.send(beacon.port, `01${u32(nodeId)}`);
  assert.equal(hex(await client.next()), `02${loopbackEp(client.port)}`);
}

describe('beacon server', () => {
  it('answers Discover with the observed endpoint (node 0 is not recorded)', async () => {
    await withBeacon({}, async (beacon, clients) => {
      const [a, b] = three(clients);
      await discover(beacon, a, 5);
      await discover(beacon, b, 0);
      assert.deepEqual(beacon.nodeIds(), [5]);
      await a.send(beacon.port, `03${u32(5)}${u32(0)}`);
      assert.deepEqual(await a.drain(100), []);
    });
  });

  it('sends PunchCommand to both sides when the target is known', async () => {
    await withBeacon({}, async (beacon, clients) => {
      const [a, b, c] = three(clients);
      await discover(beacon, a, 1);
      // Unlike the reference, a requester must have registered (Discover) from where it asks.
      await c.send(beacon.port, `03${u32(3)}${u32(1)}`);
      assert.deepEqual(await c.drain(100), []);
      await discover(beacon, b, 2);
      await b.send(beacon.port, `03${u32(2)}${u32(1)}`);
      assert.equal(hex(await b.next()), `04${loopbackEp(a.port)}`);
      assert.equal(hex(await a.next()), `04${loopbackEp(b.port)}`);
      await a.send(beacon.port, `03${u32(1)}${u32(2)}`);
      assert.equal(hex(await a.next()), `04${loopbackEp(b.port)}`);
      assert.equal(hex(await b.next()), `04${loopbackEp(a.port)}`);
    });
  });

  it('ignores a PunchRequest for an unknown target', async () => {
    await withBeacon({}, async (beacon, clients) => {
      const [a] = three(clients);
      await a.send(beacon.port, `03${u32(1)}${u32(99)}`);
      assert.deepEqual(await a.drain(100), []);
    });
  });

  it('delivers a relay to a local node as RelayDeliver', async () => {
    await withBeacon({}, async (beacon, clients) => {
      const [a, b] = three(clients);
      await discover(beacon, a, 1);
      await discover(beacon, b, 2);
      await b.send(beacon.port, `05${u32(2)}${u32(1)}${FRAME}`);
      assert.equal(hex(await a.next()), `06${u32(2)}${FRAME}`);
      assert.equal(beacon.stats().relayed, 1);
    });
  });

  it('refuses a relay whose sender is not registered at the source endpoint', async () => {
    await withBeacon({}, async (beacon, clients) => {
      const [a, b, c] = three(clients);
      await discover(beacon, a, 1);
      await discover(beacon, b, 2);
      await discover(beacon, c, 3);
      await c.send(beacon.port, `05${u32(2)}${u32(1)}${FRAME}`); // c claims to be node 2
      await c.send(beacon.port, `05${u32(7)}${u32(1)}${FRAME}`); // unknown sender
      assert.deepEqual(await a.drain(150), []);
      assert.equal(beacon.stats().drops.relay_spoofed, 2);
      await b.send(beacon.port, `05${u32(2)}${u32(1)}${FRAME}`);
      assert.equal(hex(await a.next()), `06${u32(2)}${FRAME}`);
    });
  });

  it('drops a relay to an unknown destination', async () => {
    await withBeacon({}, async (beacon, clients) => {
      const [a] = three(clients);
      await discover(beacon, a, 1);
      await a.send(beacon.port, `05${u32(1)}${u32(42)}${FRAME}`);
      await a.drain(100);
      assert.equal(beacon.stats().drops.relay_unknown_dest, 1);
    });
  });

  it('survives malformed datagrams and keeps answering', async () => {
    await withBeacon({}, async (beacon, clients) => {
      const [a] = three(clients);
      const garbage = [
        '',
        '01',
        '010000',
        '03000000',
        '05000000010000',
        '07000000010005',
        'ff',
        '0204',
        '0211',
        '0500000001000000025049',
      ];
      for (const g of garbage) await a.send(beacon.port, g === '' ? new Uint8Array(0) : g);
      for (let i = 0; i < 20; i++)
        await a.send(beacon.port, Buffer.from(Array.from({ length: 1 + i * 7 }, (_, j) => (i * 31 + j * 17) & 0xff)));
      await a.drain(100);
      await discover(beacon, a, 9);
      const { drops } = beacon.stats();
      assert.ok(drops.malformed + drops.unexpected_type >= garbage.length, JSON.stringify(drops));
    });
  });

  it('forgets nodes 5 minutes after their last Discover', async () => {
    let now = 1_000_000;
    await withBeacon({ now: () => now }, async (beacon, clients) => {
      const [a, b] = three(clients);
      await discover(beacon, a, 1);
      now += 4 * 60_000;
      await discover(beacon, a, 1); // refresh
      now += 4 * 60_000;
      await discover(beacon, b, 2);
      await b.send(beacon.port, `03${u32(2)}${u32(1)}`);
      assert.equal(hex(await b.next()), `04${loopbackEp(a.port)}`);
      await a.next();
      now += 5 * 60_000;
      await discover(beacon, b, 3);
      await b.send(beacon.port, `03${u32(3)}${u32(1)}`);
      assert.deepEqual(await b.drain(100), []);
      assert.deepEqual(beacon.nodeIds(), [3]);
    });
  });

  it('evicts the least recently seen node when the table is full', async () => {
    await withBeacon({ maxNodes: 2 }, async (beacon, clients) => {
      const [a, b, c] = three(clients);
      await discover(beacon, a, 1);
      await discover(beacon, b, 2);
      await discover(beacon, c, 3);
      assert.deepEqual(beacon.nodeIds(), [2, 3]);
    });
  });

  it('limits how many nodes one IP may hold', async () => {
    await withBeacon({ maxNodesPerIp: 2 }, async (beacon, clients) => {
      const [a] = three(clients);
      for (const id of [1, 2, 3]) await discover(beacon, a, id);
      assert.deepEqual(beacon.nodeIds(), [1, 2]);
      assert.equal(beacon.stats().drops.ip_limit, 1);
    });
  });

  it('rate limits each source IP', async () => {
    const now = 5_000;
    await withBeacon({ now: () => now, limits: { controlBurst: 5, controlPerSecond: 1 } }, async (beacon, clients) => {
      const [a] = three(clients);
      for (let i = 0; i < 20; i++) await a.send(beacon.port, `01${u32(0)}`);
      assert.equal((await a.drain(150)).length, 5);
      assert.equal(beacon.stats().drops.rate_limited, 15);
    });
  });

  it('drops relays when the relay queue is full', async () => {
    await withBeacon({ relayQueueLimit: 0 }, async (beacon, clients) => {
      const [a, b] = three(clients);
      await discover(beacon, a, 1);
      await discover(beacon, b, 2);
      await b.send(beacon.port, `05${u32(2)}${u32(1)}${FRAME}`);
      assert.deepEqual(await a.drain(100), []);
      assert.equal(beacon.stats().drops.relay_queue_full, 1);
    });
  });

  it('ignores Sync from a beacon that is not a configured peer', async () => {
    await withBeacon({}, async (beacon, clients) => {
      const [a] = three(clients);
      await discover(beacon, a, 1);
      await a.send(beacon.port, `07${u32(9)}${u16(1)}${u32(50)}`);
      await a.send(beacon.port, `05${u32(1)}${u32(50)}${FRAME}`);
      assert.deepEqual(await a.drain(100), []);
      assert.equal(beacon.stats().drops.sync_not_peer, 1);
      assert.equal(beacon.stats().drops.relay_unknown_dest, 1);
    });
  });
});

describe('beacon gossip between peers', () => {
  let x: BeaconServer;
  let y: BeaconServer;
  let clients: UdpClient[];

  before(async () => {
    // Ports are needed before the peer lists, so bind two beacons, then restart them as peers.
    const probeX = await BeaconServer.start({ host: '127.0.0.1', port: 0 });
    const probeY = await BeaconServer.start({ host: '127.0.0.1', port: 0 });
    const [px, py] = [probeX.port, probeY.port];
    await Promise.all([probeX.close(), probeY.close()]);
    x = await BeaconServer.start({
      host: '127.0.0.1',
      port: px,
      beaconId: 1,
      peers: [`127.0.0.1:${py}`],
      syncIntervalMs: 50,
    });
    y = await BeaconServer.start({
      host: '127.0.0.1',
      port: py,
      beaconId: 2,
      peers: [`127.0.0.1:${px}`],
      syncIntervalMs: 50,
    });
    clients = await Promise.all([UdpClient.open(), UdpClient.open()]);
  });

  after(async () => {
    for (const c of clients) c.close();
    await Promise.all([x.close(), y.close()]);
  });

  it('forwards a relay to the beacon that owns the destination', async () => {
    const [a, b] = clients;
    assert.ok(a && b);
    await discover(x, a, 1);
    await discover(y, b, 2);
    await new Promise((resolve) => setTimeout(resolve, 200));
    await b.send(y.port, `05${u32(2)}${u32(1)}${FRAME}`);
    assert.equal(hex(await a.next()), `06${u32(2)}${FRAME}`);
    assert.equal(y.stats().relayed, 1);
    assert.equal(x.stats().relayed, 1);
  });
});

describe('beacon health endpoint', () => {
  it('answers GET /healthz', async () => {
    let healthy = true;
    const health = await startHealthServer('127.0.0.1', 0, () => healthy);
    try {
      const ok = await fetch(`http://127.0.0.1:${health.port}/healthz`);
      assert.equal(ok.status, 200);
      assert.equal(await ok.text(), 'ok');
      healthy = false;
      const bad = await fetch(`http://127.0.0.1:${health.port}/healthz`);
      assert.equal(bad.status, 503);
      assert.equal((await fetch(`http://127.0.0.1:${health.port}/other`)).status, 404);
    } finally {
      await health.close();
    }
  });
});

describe('beacon tables', () => {
  it('NodeTable moves a node between IPs and keeps the per-IP counts right', () => {
    const t = new NodeTable({ maxNodes: 10, ttlMs: 1000, maxNodesPerIp: 1 });
    assert.equal(t.record(1, { ip: '10.0.0.1', port: 1 }, 0), 'ok');
    assert.equal(t.record(2, { ip: '10.0.0.1', port: 2 }, 0), 'ip_limit');
    assert.equal(t.record(1, { ip: '10.0.0.1', port: 3 }, 1), 'ok'); // same node, new port
    assert.equal(t.record(1, { ip: '10.0.0.2', port: 3 }, 2), 'ok'); // moved: frees 10.0.0.1
    assert.equal(t.record(2, { ip: '10.0.0.1', port: 2 }, 3), 'ok');
    assert.deepEqual(t.get(1, 4), { ip: '10.0.0.2', port: 3 });
    assert.equal(t.get(1, 1002), undefined);
    assert.equal(t.size, 1);
  });

  it('IpRateLimiter forgets the least recently active IP when full', () => {
    const l = new IpRateLimiter(1, 1, 2);
    assert.equal(l.take('a', 0), true);
    assert.equal(l.take('a', 0), false);
    assert.equal(l.take('b', 0), true);
    assert.equal(l.take('c', 0), true); // evicts a
    assert.equal(l.size, 2);
    assert.equal(l.take('a', 0), true);
  });

  it('PeerDirectory ignores stale and unknown peers', () => {
    const d = new PeerDirectory(100);
    const p1 = { ip: '10.0.0.1', port: 9001 };
    const p2 = { ip: '10.0.0.2', port: 9001 };
    d.setPeers([p1, p2]);
    assert.equal(d.applySync({ ip: '10.0.0.3', port: 9001 }, [5], 0), 'not_peer');
    assert.equal(d.applySync(p1, [5, 6], 0), 'resumed');
    assert.equal(d.applySync(p2, [6], 50), 'resumed');
    assert.deepEqual(d.owner(5, 60), p1);
    assert.deepEqual(d.owner(6, 60), p2); // the most recent claim wins
    assert.equal(d.owner(5, 100), undefined); // stale
    assert.equal(d.applySync(p1, [7], 120), 'resumed'); // replaces the earlier, stale list
    assert.equal(d.owner(5, 130), undefined);
    assert.deepEqual(d.owner(7, 130), p1);
  });
});
