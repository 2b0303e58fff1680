import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Identity } from '../../src/crypto/index.js';
import { formatAddr, makeAddr } from '../../src/protocol/address.js';
import { isJsonObject, type JsonObject } from '../../src/protocol/json.js';
import { Flag, makePacket, Proto, type Packet } from '../../src/protocol/packet.js';
import { RegistryClient } from '../../src/registry/client.js';
import { RegistryKeys, registryKeyFetch } from '../../src/registry-keys.js';
import { Driver } from '../../src/sdk/driver.js';
import { subscribe, type Subscription } from '../../src/sdk/events.js';
import { IpcClient } from '../../src/sdk/ipc-client.js';
import type { PilotConn } from '../../src/sdk/types.js';
import { decodeResetCause } from '../../src/transport/reset-cause.js';
import { Tunnel } from '../../src/tunnel/index.js';
import { Cluster, type DaemonHandle } from './cluster.js';
import { makeTrust, percentile } from './eventstream-helpers.js';
import { until } from '../wait.js';
import { sleep } from './tunnel-harness.js';

/**
 * Hostile nodes against the transport of a real daemon on 127.0.0.1. The attacker is a node made of
 * the raw parts — a fresh registration, a tunnel of its own, packets written by hand — or a real
 * daemon used past fair limits. Each case is an attack that once locked other nodes out.
 *
 * Run with PILOT_TEST_FROM_SOURCE=1 unless dist/ is freshly built.
 */

/** A node made of the raw parts: registered with the registry, its own tunnel, packets written by hand. */
class RawNode {
  readonly received: Packet[] = [];
  private nextPort = 49152;

  private constructor(
    readonly tunnel: Tunnel,
    readonly registry: RegistryClient,
    readonly nodeId: number,
  ) {
    tunnel.on('packet', (p) => this.received.push(p));
  }

  static async join(cluster: Cluster): Promise<RawNode> {
    const identity = Identity.generate();
    const registry = new RegistryClient({ address: cluster.registry, identity });
    const tunnel = await Tunnel.open({
      listen: '127.0.0.1:0',
      identity,
      keys: new RegistryKeys(registryKeyFetch(registry)),
    });
    const reply = await registry.register({ listenAddr: `127.0.0.1:${tunnel.localPort}` });
    if (typeof reply.node_id !== 'number') throw new Error('no node id');
    tunnel.setNodeId(reply.node_id);
    return new RawNode(tunnel, registry, reply.node_id);
  }

  get address(): string {
    return formatAddr(makeAddr(0, this.nodeId));
  }

  /** Opens the tunnel to a public daemon (key exchange done). */
  async reach(d: DaemonHandle): Promise<void> {
    const r = await this.registry.resolve(d.nodeId);
    if (typeof r.real_addr !== 'string') throw new Error(`cannot resolve ${d.nodeId}`);
    const established = new Promise<void>((resolve) => {
      const on = (e: { peerNodeId: number }): void => {
        if (e.peerNodeId !== d.nodeId) return;
        this.tunnel.off('established', on);
        resolve();
      };
      this.tunnel.on('established', on);
    });
    this.tunnel.addPeer(d.nodeId, r.real_addr);
    await Promise.race([established, sleep(5000).then(() => Promise.reject(new Error('no key exchange')))]);
  }

  /** A SYN to `port` of `d`, from a fresh source port each time. */
  syn(d: DaemonHandle, port: number): void {
    this.send(d, Flag.SYN, port, new Uint8Array(0));
  }

  /** A SYN carrying the stream's first bytes (as a pilot-ts dialer sends to a peer that takes them). */
  synWithData(d: DaemonHandle, port: number, payload: Uint8Array): void {
    this.send(d, Flag.SYN, port, payload);
  }

  /** A data segment for a connection `d` does not have. */
  stray(d: DaemonHandle, port: number): void {
    this.send(d, Flag.ACK, port, Buffer.from('stray'));
  }

  private send(d: DaemonHandle, flags: number, port: number, payload: Uint8Array): void {
    const srcPort = this.nextPort;
    this.nextPort = srcPort === 65535 ? 49152 : srcPort + 1;
    this.tunnel.send(
      d.nodeId,
      makePacket({
        flags,
        protocol: Proto.Stream,
        src: makeAddr(0, this.nodeId),
        dst: makeAddr(0, d.nodeId),
        srcPort,
        dstPort: port,
        seq: 0,
        ack: flags & Flag.ACK ? 1 : 0,
        window: 512,
        payload,
      }),
    );
  }

  resets(): Packet[] {
    return this.received.filter((p) => p.protocol === Proto.Stream && (p.flags & Flag.RST) !== 0);
  }

  /** Sends `perSecond` packets a second for `ms` (in ticks of 10 ms). */
  async flood(ms: number, perSecond: number, one: () => void): Promise<number> {
    const started = Date.now();
    let sent = 0;
    while (Date.now() - started < ms) {
      const due = Math.floor(((Date.now() - started) / 1000) * perSecond);
      for (; sent < due; sent++) one();
      await sleep(10);
    }
    return sent;
  }

  async close(): Promise<void> {
    this.registry.close();
    await this.tunnel.close();
  }
}

/** The daemon's whole Info JSON (the SDK's typed info() keeps only the reference's fields). */
async function rawInfo(d: DaemonHandle): Promise<JsonObject> {
  const client = await IpcClient.connect(d.socket, {
    onPush: () => undefined,
    onUnsolicitedError: () => undefined,
    onClose: () => undefined,
  });
  try {
    return await client.request({ cmd: 'Info' }, 'InfoOK', (m) => ('json' in m ? m.json : {}));
  } finally {
    await client.close();
  }
}

/** Live connections of `victim` on `port`, per remote address. */
async function holders(victim: DaemonHandle, port: number): Promise<Map<string, number>> {
  const info = await rawInfo(victim);
  const m = new Map<string, number>();
  for (const c of Array.isArray(info.conn_list) ? info.conn_list : []) {
    if (!isJsonObject(c) || c.local_port !== port || c.state === 'TIME_WAIT' || c.state === 'CLOSED') continue;
    const who = String(c.remote_addr);
    m.set(who, (m.get(who) ?? 0) + 1);
  }
  return m;
}

function counter(info: JsonObject, group: string, key: string): number {
  const g = info[group];
  const v = isJsonObject(g) ? g[key] : undefined;
  return typeof v === 'number' ? v : 0;
}

/** Round trips of one byte through b's echo port on one connection, in ms. */
async function echoRtts(conn: PilotConn, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const got = new Promise<void>((resolve) => conn.once('data', () => resolve()));
    conn.write(Buffer.from([i & 0xff]));
    await got;
    out.push(performance.now() - t0);
    await sleep(20);
  }
  return out.sort((x, y) => x - y);
}

describe('attacks on the transport of a daemon', () => {
  let cluster: Cluster;
  let a: DaemonHandle; // trusted by b
  let b: DaemonHandle; // the victim: public, 64 connections per port
  let c: DaemonHandle; // an honest node b does not trust
  let da: Driver;
  let db: Driver;
  let dc: Driver;
  const raw: RawNode[] = [];
  const drivers: Driver[] = [];

  before(async () => {
    cluster = await Cluster.start();
    b = await cluster.addDaemon('b', ['-public', '-max-conns-per-port', '64']);
    [a, c] = await Promise.all([cluster.addDaemon('a'), cluster.addDaemon('c')]);
    [da, db, dc] = await Promise.all([Driver.connect(a.socket), Driver.connect(b.socket), Driver.connect(c.socket)]);
    await makeTrust(da, db, a, b);
  });

  after(async () => {
    await Promise.all(raw.map((r) => r.close()));
    await Promise.all([da?.close(), db?.close(), dc?.close(), ...drivers.map((d) => d.close())]);
    await cluster?.stop();
  });

  it('a SYN flood on port 444 from one untrusted node holds a few slots for seconds: others’ handshakes get in at once, a trusted peer’s RTT holds', async (t) => {
    const x = await RawNode.join(cluster);
    raw.push(x);
    await x.reach(b);
    const echo = await da.dial(b.address, 7);
    const baseline = await echoRtts(echo, 15);

    let worst = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        worst = Math.max(worst, (await holders(b, 444)).get(x.address) ?? 0);
        await sleep(250);
      }
    })();
    const flood = x.flood(8_000, 3_000, () => x.syn(b, 444));
    await sleep(2_000);
    // An honest node's handshake connection opens at once, each time, while the flood goes on.
    const dialTimes: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t0 = Date.now();
      const conn = await dc.dial(b.address, 444, { timeoutMs: 5000 });
      dialTimes.push(Date.now() - t0);
      conn.destroy();
      await sleep(500);
    }
    const during = await echoRtts(echo, 15);
    const sent = await flood;
    sampling = false;
    await sampler;
    echo.destroy();

    t.diagnostic(
      `sent ${sent} SYNs; flooder held at most ${worst}; dials ${dialTimes.join('/')} ms; echo p50 ${percentile(baseline, 50).toFixed(2)} -> ${percentile(during, 50).toFixed(2)} ms, p90 ${percentile(baseline, 90).toFixed(2)} -> ${percentile(during, 90).toFixed(2)} ms`,
    );
    assert.ok(sent > 20_000, `flood sent ${sent} SYNs`);
    assert.ok(worst <= 4, `the flooder held ${worst} connections on port 444 at once`);
    assert.ok(Math.max(...dialTimes) < 1_000, `handshake dials took ${dialTimes.join(', ')} ms`);
    const [p50Before, p50During] = [percentile(baseline, 50), percentile(during, 50)];
    assert.ok(
      p50During < Math.max(3 * p50Before, p50Before + 15),
      `echo RTT p50 ${p50Before.toFixed(1)} ms before, ${p50During.toFixed(1)} ms during the flood`,
    );
    // Its connections end within seconds of the flood, not minutes.
    await until(
      'the flooder holds nothing on 444',
      async () => (((await holders(b, 444)).get(x.address) ?? 0) === 0 ? true : undefined),
      7_000,
    );
    const info = await rawInfo(b);
    assert.ok(counter(info, 'syn_refused', 'rate_limited') > 1000, 'the excess was dropped by the SYN limits');
  });

  it('one trusted peer cannot take a service port: another peer gets in, the hog is told "port full", a closed port says "no listener"', async () => {
    // a subscribes 70 times to b's event stream (64 slots): it may use every free slot...
    const subs: Subscription[] = [];
    const refusals: Error[] = [];
    for (let i = 0; i < 70; i++) {
      try {
        subs.push(await subscribe(da, b.address, `hog.${i}`));
      } catch (err) {
        refusals.push(err as Error);
      }
    }
    assert.equal(subs.length, 64, `a got ${subs.length} subscriptions`);
    assert.equal(refusals.length, 6);
    for (const err of refusals)
      assert.match(err.message, /port full/, 'the dialer learns the port is full, not that nobody listens');
    assert.equal((err(refusals[0]) as { code?: string }).code, 'unavailable');
    // ...but another trusted peer still gets in, up to its share (16 of 64).
    const ds = await trustedPeer('d');
    const theirs: Subscription[] = [];
    for (let i = 0; i < 3; i++) theirs.push(await subscribe(ds.driver, b.address, `fair.${i}`));
    const held = await holders(b, 1002);
    assert.equal(held.get(formatAddr(makeAddr(0, ds.handle.nodeId))), 3);
    assert.equal(held.get(a.address), 61);
    await assert.rejects(subscribe(da, b.address, 'hog.more'), /port full/);
    await assert.rejects(
      da.dial(b.address, 4242, { timeoutMs: 5000 }),
      (e: Error & { code?: string }) => /no listener/.test(e.message) && e.code === 'refused',
    );
    const info = await rawInfo(b);
    assert.ok(counter(info, 'syn_refused', 'evicted') >= 3);
    for (const s of [...subs, ...theirs]) s.close();
  });

  it('SYNs to closed ports and stray segments from a trusted node get a few RSTs a second, the rest counted', async () => {
    const y = await trustedRawNode();
    const before = counter(await rawInfo(b), 'syn_refused', 'rst_suppressed');
    const sent = await y.flood(3_000, 1_000, () => (Math.random() < 0.5 ? y.syn(b, 4444) : y.stray(b, 5555)));
    await sleep(300);
    const resets = y.resets().length;
    assert.ok(sent >= 2_500, `sent ${sent}`);
    assert.ok(resets <= 20 + 10 * 4, `${resets} RSTs for ${sent} packets`);
    assert.ok(resets >= 20, `${resets} RSTs: the budget is still used`);
    const suppressed = counter(await rawInfo(b), 'syn_refused', 'rst_suppressed') - before;
    assert.ok(suppressed >= sent - resets - 50, `${suppressed} RSTs counted as withheld`);
  });

  it('SYNs from an untrusted node to ports other than 444 get a few RSTs a second, saying why, the rest counted', async () => {
    const x = await RawNode.join(cluster);
    raw.push(x);
    await x.reach(b);
    const sent = await x.flood(3_000, 1_000, () => x.syn(b, 7));
    await sleep(300);
    const resets = x.resets();
    assert.ok(sent >= 2_500, `sent ${sent}`);
    assert.ok(resets.length <= 20 + 10 * 4, `${resets.length} RSTs for ${sent} SYNs`);
    assert.equal(decodeResetCause(resets[0]?.payload ?? new Uint8Array(0)), 'untrusted');
    const info = await rawInfo(b);
    assert.ok(counter(info, 'syn_refused', 'untrusted') >= sent - 50);
    assert.ok(counter(info, 'syn_refused', 'rst_suppressed') >= sent - resets.length - 50);
  });

  it('data in a SYN reaches a listener only from a trusted node: an untrusted one is refused and its bytes dropped', async () => {
    const listener = await db.listen(6100);
    const got: string[] = [];
    const accepting = (async () => {
      for await (const conn of listener) {
        conn.on('data', (chunk: Buffer) => got.push(chunk.toString()));
        conn.on('error', () => undefined);
      }
    })();
    const x = await RawNode.join(cluster);
    raw.push(x);
    await x.reach(b);
    x.synWithData(b, 6100, Buffer.from('from-untrusted'));
    await until('the untrusted SYN refused', async () => (x.resets().length > 0 ? true : undefined));
    assert.equal(decodeResetCause(x.resets()[0]?.payload ?? new Uint8Array(0)), 'untrusted');

    const y = await trustedRawNode();
    y.synWithData(b, 6100, Buffer.from('from-trusted'));
    await until('the trusted SYN data delivered', async () => (got.length > 0 ? true : undefined));
    const synAck = y.received.find((p) => (p.flags & (Flag.SYN | Flag.ACK)) === (Flag.SYN | Flag.ACK));
    assert.equal(synAck?.ack, 1 + 'from-trusted'.length, 'the SYN-ACK acknowledges the SYN and its bytes');
    await sleep(200);
    assert.deepEqual(got, ['from-trusted'], 'nothing of the untrusted SYN reached the listener');
    await listener.close();
    await accepting.catch(() => undefined);
  });

  /** A raw node that b trusts, its tunnel to b open. */
  async function trustedRawNode(): Promise<RawNode> {
    const y = await RawNode.join(cluster);
    raw.push(y);
    await y.registry.requestHandshake(b.nodeId, 'raw');
    await until('pending at b', async () =>
      (await db.pending()).some((p) => p.node_id === y.nodeId) ? true : undefined,
    );
    await db.approve(y.nodeId);
    await y.reach(b);
    return y;
  }

  /** A new daemon that b trusts. */
  async function trustedPeer(name: string): Promise<{ handle: DaemonHandle; driver: Driver }> {
    const handle = await cluster.addDaemon(name);
    const driver = await Driver.connect(handle.socket);
    drivers.push(driver);
    await makeTrust(driver, db, handle, b);
    return { handle, driver };
  }
});

function err(e: Error | undefined): Error {
  assert.ok(e);
  return e;
}
