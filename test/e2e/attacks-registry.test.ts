import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Identity } from '../../src/crypto/identity.js';
import { signChallenge } from '../../src/crypto/registry-signing.js';
import { RegistryClient } from '../../src/registry/client.js';
import { signBody } from '../../src/registry/request-signer.js';
import { RegistryServer, type ConnectionLimits } from '../../src/registry/server.js';
import { RawConn } from './registry-helpers.js';

/** Hostile registry clients, speaking the raw protocol (PROTOCOL.md §5.1). */
describe('attacks on the registry', () => {
  let server: RegistryServer | undefined;
  const conns: RawConn[] = [];
  const clients: RegistryClient[] = [];

  const start = async (limits: Partial<ConnectionLimits>): Promise<RegistryServer> => {
    server = await RegistryServer.start({
      host: '127.0.0.1',
      port: 0,
      storePath: ':memory:',
      connectionLimits: limits,
    });
    return server;
  };
  const open = async (port: number, from?: string): Promise<RawConn> => {
    const c = await RawConn.open(port, from);
    conns.push(c);
    return c;
  };
  const registers = async (port: number): Promise<boolean> => {
    const client = new RegistryClient({ address: `127.0.0.1:${port}`, identity: Identity.generate(), timeoutMs: 3000 });
    clients.push(client);
    return client.register({ listenAddr: '127.0.0.1:4000' }).then(
      (reply) => typeof reply.node_id === 'number',
      () => false,
    );
  };

  afterEach(async () => {
    for (const c of conns.splice(0)) c.close();
    for (const c of clients.splice(0)) c.close();
    await server?.close();
    server = undefined;
  });

  it('a captured set_tags replayed with other tags or a re-spelt signature is refused', async () => {
    const s = await start({});
    const identity = Identity.generate();
    const victim = new RegistryClient({ address: `127.0.0.1:${s.port}`, identity, timeoutMs: 3000 });
    clients.push(victim);
    const id = (await victim.register({ listenAddr: '127.0.0.1:4000' })).node_id as number;
    const captured = signBody(identity, { type: 'set_tags', node_id: id, tags: ['gpu'] });
    const wire = await open(s.port);
    assert.equal((await wire.request(captured)).type, 'set_tags_ok');
    const text = captured.signature as string;
    const respelt = `${text.slice(0, 85)}${text[85] === 'A' ? 'B' : 'A'}==`;
    for (const replay of [captured, { ...captured, tags: ['evil'] }, { ...captured, signature: respelt }]) {
      assert.equal((await wire.request(replay)).type, 'error');
    }
    assert.deepEqual((await victim.lookup(id)).tags, ['gpu']);
  });

  it('a port-444 signature (handshake:<victim>:<attacker>) cannot be replayed as the victim’s request_handshake', async () => {
    const s = await start({});
    const victimKey = Identity.generate();
    const victim = new RegistryClient({ address: `127.0.0.1:${s.port}`, identity: victimKey, timeoutMs: 3000 });
    const attackerKey = Identity.generate();
    const attacker = new RegistryClient({ address: `127.0.0.1:${s.port}`, identity: attackerKey, timeoutMs: 3000 });
    clients.push(victim, attacker);
    const v = (await victim.register({ listenAddr: '127.0.0.1:4000' })).node_id as number;
    const a = (await attacker.register({ listenAddr: '127.0.0.1:4001' })).node_id as number;
    // What the victim's daemon signs in a direct handshake_reject to the attacker (PROTOCOL.md §6.1).
    const sig = signChallenge(victimKey, `handshake:${v}:${a}`);
    const wire = await open(s.port);
    const forged = await wire.request({
      type: 'request_handshake',
      from_node_id: v,
      to_node_id: a,
      justification: 'x',
      signature: sig,
    });
    assert.equal(forged.code, 'bad_signature');
    // The attacker accepting the "request" creates no pair: the victim never claimed trust.
    await attacker.respondHandshake(v, true).catch(() => undefined);
    await assert.rejects(attacker.resolve(v));
  });

  it('an unsigned register of a body-signing node’s key, even from its own IP, cannot move its endpoint', async () => {
    const s = await start({});
    const identity = Identity.generate();
    const node = new RegistryClient({ address: `127.0.0.1:${s.port}`, identity, timeoutMs: 3000 });
    clients.push(node);
    const id = (await node.register({ listenAddr: '127.0.0.1:4000' })).node_id as number;
    await node.setVisibility(true);
    const wire = await open(s.port);
    const moved = await wire.request({
      type: 'register',
      listen_addr: '127.0.0.1:6666',
      public_key: identity.publicKeyBase64,
    });
    assert.equal(moved.code, 'bad_signature');
    assert.equal((await node.lookup(id)).real_addr, '127.0.0.1:4000');
  });

  describe('session heartbeats (unsigned on a connection bound by a signed body)', () => {
    /** A node registered by a signed register sent on its own raw connection (which binds it). */
    const node = async (port: number): Promise<{ id: number; identity: Identity; wire: RawConn }> => {
      const identity = Identity.generate();
      const wire = await open(port);
      const reply = await wire.request(
        signBody(identity, { type: 'register', listen_addr: '127.0.0.1:4000', public_key: identity.publicKeyBase64 }),
      );
      assert.equal(reply.type, 'register_ok');
      assert.ok((reply.features as string[]).includes('session_heartbeat'));
      return { id: reply.node_id as number, identity, wire };
    };

    it('is refused on a fresh connection', async () => {
      const s = await start({});
      const a = await node(s.port);
      assert.equal((await a.wire.request({ type: 'heartbeat', node_id: a.id })).type, 'heartbeat_ok');
      const fresh = await open(s.port);
      const reply = await fresh.request({ type: 'heartbeat', node_id: a.id });
      assert.equal(reply.code, 'bad_signature');
      // A Go-style static signature does not bind a connection either (the node signs bodies anyway).
      const statics = await fresh.request({
        type: 'heartbeat',
        node_id: a.id,
        signature: signChallenge(a.identity, `heartbeat:${a.id}`),
      });
      assert.equal(statics.type, 'error');
      assert.equal((await fresh.request({ type: 'heartbeat', node_id: a.id })).code, 'bad_signature');
    });

    it('is refused for another node than the one the connection is bound to', async () => {
      const s = await start({});
      const a = await node(s.port);
      const b = await node(s.port);
      const reply = await a.wire.request({ type: 'heartbeat', node_id: b.id });
      assert.equal(reply.code, 'bad_signature');
      assert.equal((await b.wire.request({ type: 'heartbeat', node_id: b.id })).type, 'heartbeat_ok');
    });

    it('a signed request of another node on a bound connection does not rebind it', async () => {
      const s = await start({});
      const a = await node(s.port);
      const b = await node(s.port);
      const signedB = await a.wire.request(signBody(b.identity, { type: 'heartbeat', node_id: b.id }));
      assert.equal(signedB.type, 'heartbeat_ok', 'a valid signed request is served wherever it comes from');
      const reregisterB = await a.wire.request(
        signBody(b.identity, {
          type: 'register',
          listen_addr: '127.0.0.1:4000',
          public_key: b.identity.publicKeyBase64,
        }),
      );
      assert.equal(reregisterB.type, 'register_ok');
      assert.equal((await a.wire.request({ type: 'heartbeat', node_id: b.id })).code, 'bad_signature');
      assert.equal((await a.wire.request({ type: 'heartbeat', node_id: a.id })).type, 'heartbeat_ok');
    });

    it('ends when the node’s key is rotated, until the new key is proven on the connection', async () => {
      const s = await start({});
      const a = await node(s.port);
      const next = Identity.generate();
      const rotate = signBody(a.identity, { type: 'rotate_key', node_id: a.id, new_public_key: next.publicKeyBase64 });
      assert.equal((await open(s.port).then((w) => w.request(rotate))).type, 'rotate_key_ok');
      assert.equal((await a.wire.request({ type: 'heartbeat', node_id: a.id })).code, 'bad_signature');
      const proven = await a.wire.request(signBody(next, { type: 'heartbeat', node_id: a.id }));
      assert.equal(proven.type, 'heartbeat_ok');
      assert.equal((await a.wire.request({ type: 'heartbeat', node_id: a.id })).type, 'heartbeat_ok');
    });
  });

  it('answers a pipelined flood request by request, in order, refusing what is over the rate', async () => {
    const s = await start({});
    const flood = await open(s.port, '127.0.0.7');
    const n = 1500;
    for (let i = 1; i <= n; i++) flood.send({ type: 'lookup', node_id: 100_000 + i });
    const answered: number[] = [];
    let limited = 0;
    for (let i = 1; i <= n; i++) {
      const reply = await flood.next(10_000);
      if (reply?.code === 'rate_limited') limited++;
      else answered.push(Number(/\d{6}/.exec(String(reply?.message))?.[0]));
    }
    assert.ok(limited >= n - 500 && limited < n, `${limited} of ${n} refused`);
    assert.deepEqual(
      answered,
      [...answered].sort((a, b) => a - b),
      'replies in request order',
    );
    assert.equal(answered[0], 100_001);
    // Another source is served normally meanwhile, and the flooding one again once it slows down.
    const other = await open(s.port, '127.0.0.8');
    assert.equal((await other.request({ type: 'list_networks' })).type, 'list_networks_ok');
  });

  it('stops reading a connection for a while after refusing its requests over the rate', async () => {
    const s = await start({});
    const flood = await open(s.port, '127.0.0.9');
    // More than one socket read holds (about 45 bytes a frame, 64 KiB a read).
    const n = 4000;
    for (let i = 1; i <= n; i++) flood.send({ type: 'lookup', node_id: 100_000 + i });
    let firstRefusal: number | undefined;
    for (let i = 1; i <= n; i++) {
      const reply = await flood.next(10_000);
      if (reply?.code === 'rate_limited') firstRefusal ??= performance.now();
    }
    assert.ok(firstRefusal !== undefined, 'the flood was refused');
    const held = performance.now() - firstRefusal;
    assert.ok(held >= 95, `the rest of the flood was read ${held.toFixed(1)} ms after the first refusal`);
    const other = await open(s.port, '127.0.0.10');
    assert.equal((await other.request({ type: 'list_networks' })).type, 'list_networks_ok');
  });

  it('drops connections that trickle a frame or never send one (slowloris)', async () => {
    const s = await start({ frameDeadlineMs: 300 });
    const silent = await open(s.port);
    const trickling = await open(s.port);
    trickling.write(Buffer.from([0, 0])); // two bytes of a length prefix, then nothing
    const idleAfterRequest = await open(s.port);
    assert.equal((await idleAfterRequest.request({ type: 'list_networks' })).type, 'list_networks_ok');
    await Promise.all([silent.waitClosed(2000), trickling.waitClosed(2000)]);
    await sleep(400);
    assert.equal(idleAfterRequest.closed, false, 'a client idle between requests keeps its connection');
    assert.equal((await idleAfterRequest.request({ type: 'list_networks' })).type, 'list_networks_ok');
  });

  it('keeps room for new sources when a few sources fill the connection table', async () => {
    const s = await start({ total: 40, perIp: 30 });
    // Two sources hold every slot with connections idle between requests.
    for (const from of ['127.0.0.2', '127.0.0.3']) {
      for (let i = 0; i < 20; i++) {
        const c = await open(s.port, from);
        assert.equal((await c.request({ type: 'list_networks' })).type, 'list_networks_ok');
      }
    }
    // A newcomer from another address still gets in, and again after that.
    assert.equal(await registers(s.port), true, 'first newcomer registered');
    assert.equal(await registers(s.port), true, 'second newcomer registered');
    await sleep(100);
    const closed = conns.filter((c) => c.closed).length;
    assert.ok(closed >= 2 && closed <= 4, `${closed} of the hoarders' connections were closed`);
  });

  it('never gives one source more than its fair share', async () => {
    const s = await start({ total: 30, perIp: 30 });
    const first = [];
    for (let i = 0; i < 30; i++) first.push(await open(s.port, '127.0.0.2'));
    for (const c of first) await c.request({ type: 'list_networks' });
    // A second source takes over up to half of the table from the first, one connection at a time.
    const second = [];
    for (let i = 0; i < 15; i++) {
      const c = await open(s.port, '127.0.0.3');
      second.push(c);
      assert.equal((await c.request({ type: 'list_networks' })).type, 'list_networks_ok', `newcomer ${i}`);
    }
    await sleep(100);
    assert.equal(first.filter((c) => c.closed).length, 15);
    // Beyond half, it would take from a source no bigger than itself: refused.
    const extra = await open(s.port, '127.0.0.3').catch(() => undefined);
    if (extra !== undefined) await extra.waitClosed(2000);
  });
});
