import assert from 'node:assert/strict';
import { createServer, type AddressInfo } from 'node:net';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { Identity } from '../../src/crypto/identity.js';
import { signChallenge } from '../../src/crypto/registry-signing.js';
import { signedBodyText } from '../../src/protocol/registry-auth.js';
import { PilotError } from '../../src/errors.js';
import type { JsonObject } from '../../src/protocol/json.js';
import { RegistryClient } from '../../src/registry/client.js';
import { RegistryServer, type RegistryServerOptions } from '../../src/registry/server.js';
import { nowSeconds, RawConn, rawReplyText } from './registry-helpers.js';

const isCode = (code: string) => (err: unknown) => err instanceof PilotError && err.code === code;

/** Where the registries under test keep their state. */
export interface StoreKind {
  readonly name: string;
  /** Registry servers sharing one store; clients and raw connections are spread over them in turn. */
  readonly processes: number;
  /** A new, empty store (a file, `:memory:` or a database URL). */
  freshStore(): Promise<string>;
  /** Why these tests cannot run here (they are skipped). */
  readonly skip?: string;
  setup?(): Promise<void>;
  teardown?(): Promise<void>;
}

/** The registry's end-to-end tests, against one store kind. */
export function registryBattery(kind: StoreKind): void {
  describe(`registry server end to end (${kind.name})`, { skip: kind.skip ?? false }, () => {
    let servers: RegistryServer[] = [];
    let clients: RegistryClient[] = [];
    let raws: RawConn[] = [];
    let clock: number | undefined;
    const first = (): RegistryServer => servers[0] as RegistryServer;
    const closeAll = async (): Promise<void> => {
      await Promise.all(servers.map((s) => s.close()));
      servers = [];
    };

    const start = async (opts: Partial<RegistryServerOptions> = {}): Promise<void> => {
      await closeAll();
      const storePath = await kind.freshStore();
      for (let i = 0; i < kind.processes; i++) {
        servers.push(
          await RegistryServer.start({
            host: '127.0.0.1',
            port: 0,
            storePath,
            now: () => clock ?? Date.now(),
            ...opts,
          }),
        );
      }
    };
    const client = (identity = Identity.generate(), timeoutMs = 3000): RegistryClient => {
      const server = servers[clients.length % servers.length] as RegistryServer;
      const c = new RegistryClient({ address: `127.0.0.1:${server.port}`, identity, timeoutMs });
      clients.push(c);
      return c;
    };
    const registered = async (listenAddr = '127.0.0.1:4000'): Promise<RegistryClient> => {
      const c = client();
      await c.register({ listenAddr });
      return c;
    };
    const raw = async (): Promise<RawConn> => {
      const r = await RawConn.open((servers[raws.length % servers.length] as RegistryServer).port);
      raws.push(r);
      return r;
    };
    const id = (c: RegistryClient): number => c.nodeId as number;

    before(async () => {
      await kind.setup?.();
    });
    beforeEach(async () => {
      clock = undefined;
      await start();
    });
    afterEach(() => {
      for (const c of clients) c.close();
      for (const r of raws) r.close();
      clients = [];
      raws = [];
    });
    after(async () => {
      await closeAll();
      await kind.teardown?.();
    });

    it('registers, looks up, resolves, and manages hostnames, tags, visibility and task_exec', async () => {
      const a = client();
      const reg = await a.register({ listenAddr: '203.0.113.9:4000', hostname: 'alpha' });
      assert.equal(reg.type, 'register_ok');
      assert.equal(reg.node_id, 1);
      assert.equal(reg.network_id, 0);
      assert.equal(reg.address, '0:0000.0000.0001');
      assert.equal(reg.hostname, 'alpha');
      assert.equal(a.nodeId, 1);

      const b = await registered();
      assert.equal(b.nodeId, 2);

      let look = await b.lookup(1);
      assert.deepEqual(look.networks, [0]);
      assert.equal(look.public, false);
      assert.equal(look.polo_score, 0);
      assert.equal(look.hostname, 'alpha');
      assert.equal(look.real_addr, undefined, 'private nodes do not disclose their endpoint');

      assert.deepEqual(await a.setVisibility(true), { type: 'set_visibility_ok', node_id: 1, visibility: 'public' });
      look = await b.lookup(1);
      assert.equal(look.real_addr, '127.0.0.1:4000', 'TCP peer IP + port of listen_addr');
      assert.deepEqual(await b.resolve(1), { type: 'resolve_ok', node_id: 1, real_addr: '127.0.0.1:4000' });

      assert.deepEqual(await a.setTags(['#ml', 'gpu']), { type: 'set_tags_ok', node_id: 1, tags: ['ml', 'gpu'] });
      assert.deepEqual(await a.setTags([]), { type: 'set_tags_ok', node_id: 1, tags: null });
      await assert.rejects(a.setTags(['Bad Tag']), isCode('invalid_argument'));
      assert.deepEqual(await a.setTaskExec(true), { type: 'set_task_exec_ok', node_id: 1, task_exec: true });
      assert.equal((await b.lookup(1)).task_exec, true);

      await assert.rejects(b.setHostname('alpha'), isCode('already_exists'));
      await assert.rejects(b.setHostname('-bad'), isCode('invalid_argument'));
      await assert.rejects(b.setHostname('localhost'), isCode('invalid_argument'));
      assert.deepEqual(await b.setHostname('beta'), { type: 'set_hostname_ok', node_id: 2, hostname: 'beta' });
      assert.deepEqual(await a.resolveHostname('beta'), {
        type: 'resolve_hostname_ok',
        node_id: 2,
        address: '0:0000.0000.0002',
        public: false,
        hostname: 'beta',
      });
      await assert.rejects(a.resolveHostname('nobody'), isCode('not_found'));

      const list = await a.listNodes();
      assert.deepEqual(list.nodes, [
        { node_id: 1, address: '0:0000.0000.0001', hostname: 'alpha', task_exec: true, real_addr: '127.0.0.1:4000' },
        { node_id: 2, address: '0:0000.0000.0002', hostname: 'beta' },
      ]);
      assert.deepEqual(await a.getPoloScore(2), {
        type: 'get_polo_score_ok',
        node_id: 2,
        address: '0:0000.0000.0002',
        polo_score: 0,
      });
      const hb = await a.heartbeat();
      assert.equal(hb.type, 'heartbeat_ok');
      assert.ok(Math.abs((hb.time as number) - nowSeconds()) <= 2);
    });

    it('replies with keys sorted like Go maps and keeps ids per key across deregistration', async () => {
      const a = await registered();
      const text = await rawReplyText(first().port, { type: 'lookup', node_id: 1 });
      const keys = Object.keys(JSON.parse(text) as JsonObject);
      assert.deepEqual(keys, [...keys].sort());
      const identity = Identity.generate();
      const b = client(identity);
      await b.register({ listenAddr: '127.0.0.1:5000' });
      assert.deepEqual(await b.deregister(), { type: 'deregister_ok' });
      await assert.rejects(a.lookup(2), isCode('not_found'));
      const again = client(identity);
      assert.equal((await again.register({ listenAddr: '127.0.0.1:5000' })).node_id, 2);
      const c = await registered();
      assert.equal(c.nodeId, 3, 'ids are never reused');
    });

    it('accepts Go-style static signatures and refuses bad ones with a clear message', async () => {
      const identity = Identity.generate();
      const r = await raw();
      const reg = await r.request({ type: 'register', listen_addr: ':4000', public_key: identity.publicKeyBase64 });
      assert.equal(reg.type, 'register_ok');
      const nodeId = reg.node_id as number;
      const ok = await r.request({
        type: 'heartbeat',
        node_id: nodeId,
        signature: signChallenge(identity, `heartbeat:${nodeId}`),
      });
      assert.equal(ok.type, 'heartbeat_ok');

      const other = Identity.generate();
      const bad = await r.request({
        type: 'heartbeat',
        node_id: nodeId,
        signature: signChallenge(other, `heartbeat:${nodeId}`),
      });
      assert.equal(bad.type, 'error');
      assert.equal(bad.error, 'request failed');
      assert.equal(bad.code, 'bad_signature');
      assert.match(bad.message as string, /signature/);
      const missing = await r.request({ type: 'set_visibility', node_id: nodeId, public: true });
      assert.equal(missing.code, 'bad_signature');
      const unknown = await r.request({ type: 'no_such_thing' });
      assert.equal(unknown.code, 'unknown_type');
    });

    it('signs request bodies with a registry that offers it, and then refuses the node’s static signatures', async () => {
      const identity = Identity.generate();
      const a = client(identity);
      await a.register({ listenAddr: ':4000' });
      assert.equal(a.signsBody, true);
      assert.equal(a.canWatchHandshakes, true);
      assert.equal((await a.heartbeat()).type, 'heartbeat_ok');
      const r = await raw();
      const staticSig = await r.request({
        type: 'heartbeat',
        node_id: id(a),
        signature: signChallenge(identity, `heartbeat:${id(a)}`),
      });
      assert.equal(staticSig.code, 'bad_signature');
    });

    it('refuses a replayed, stale or altered signed body', async () => {
      const identity = Identity.generate();
      const a = client(identity);
      await a.register({ listenAddr: ':4000' });
      const at = (t: number, msg: JsonObject): JsonObject => {
        const body = { ...msg, signed_at: t };
        return { ...body, signature: signChallenge(identity, signedBodyText(body) as string) };
      };
      const now = Date.now();
      const msg = at(now, { type: 'set_tags', node_id: id(a), tags: ['gpu'] });
      const r = await raw();
      assert.equal((await r.request(msg)).type, 'set_tags_ok');
      assert.equal((await r.request(msg)).code, 'replay');
      assert.equal((await r.request(at(now - 400_000, { type: 'heartbeat', node_id: id(a) }))).code, 'replay', 'stale');
      const later = at(now + 1, { type: 'set_tags', node_id: id(a), tags: ['gpu'] });
      assert.equal(
        (await r.request({ ...later, tags: ['evil'] })).code,
        'bad_signature',
        'the tags are covered by the signature',
      );
      assert.deepEqual((await a.lookup(id(a))).tags, ['gpu']);
    });

    it('refuses taking over another key’s node through the owner string', async () => {
      const a = client();
      await a.register({ listenAddr: ':4000', owner: 'alice@example.com' });
      const intruder = client();
      await assert.rejects(intruder.register({ listenAddr: ':4001', owner: 'alice@example.com' }), (err: unknown) => {
        return err instanceof PilotError && err.code === 'already_exists' && /owner/.test(err.message);
      });
      const look = await a.lookup(id(a));
      assert.equal(look.public_key, (await a.lookup(1)).public_key);
      assert.equal(intruder.nodeId, undefined);
      assert.equal((await a.heartbeat()).type, 'heartbeat_ok', 'the real owner keeps its node');
    });

    it('makes a private node resolvable only through a mutual trust pair', async () => {
      const a = await registered();
      const b = await registered();
      const c = await registered();
      await assert.rejects(a.resolve(id(b)), isCode('untrusted'));
      assert.equal((await b.resolve(id(b))).type, 'resolve_ok', 'a node may resolve itself');

      await a.reportTrust(id(b));
      await assert.rejects(a.resolve(id(b)), isCode('untrusted'), 'a one-sided report is not trust');
      await b.reportTrust(id(a));
      assert.equal((await a.resolve(id(b))).real_addr, '127.0.0.1:4000');
      assert.equal((await b.resolve(id(a))).type, 'resolve_ok');
      await assert.rejects(c.resolve(id(b)), isCode('untrusted'));

      await b.revokeTrust(id(a));
      await assert.rejects(a.resolve(id(b)), isCode('untrusted'));
      await assert.rejects(b.revokeTrust(id(a)), isCode('not_found'));

      await c.setVisibility(true);
      assert.equal((await a.resolve(id(c))).type, 'resolve_ok', 'public nodes resolve for anyone registered');
    });

    it('creates trust from respond_handshake only when it answers a real request', async () => {
      const a = await registered();
      const b = await registered();
      assert.deepEqual(await b.respondHandshake(id(a), true), {
        type: 'respond_handshake_ok',
        accept: true,
        peer_id: id(a),
      });
      await assert.rejects(a.resolve(id(b)), isCode('untrusted'), 'no request, no pair');
      const unsolicited = await a.pollHandshakes();
      assert.equal((unsolicited.responses as JsonObject[]).length, 1, 'the response is still delivered');

      assert.deepEqual(await a.requestHandshake(id(b), 'let us talk'), {
        type: 'request_handshake_ok',
        status: 'delivered',
      });
      const polled = await b.pollHandshakes();
      const requests = polled.requests as JsonObject[];
      assert.equal(requests.length, 1);
      assert.equal(requests[0]?.from_node_id, id(a));
      assert.equal(requests[0]?.justification, 'let us talk');
      assert.deepEqual(polled.responses, []);
      assert.deepEqual((await b.pollHandshakes()).requests, [], 'a request is delivered once');

      await b.respondHandshake(id(a), true);
      assert.equal((await a.resolve(id(b))).type, 'resolve_ok');
      assert.equal((await b.resolve(id(a))).type, 'resolve_ok');
      const answer = await a.pollHandshakes();
      assert.equal((answer.responses as JsonObject[])[0]?.accept, true);
    });

    it('pushes handshake notifications to a watching node in well under a second', async () => {
      const a = await registered();
      const b = await registered();
      let notified = 0;
      let wake: () => void = () => {};
      const watch = b.watchHandshakes(() => {
        notified++;
        wake();
      });
      // Give the watch channel time to be confirmed before the request.
      await new Promise((r) => setTimeout(r, 200));
      const arrived = new Promise<void>((resolve) => {
        wake = resolve;
      });
      const sent = Date.now();
      await a.requestHandshake(id(b), 'hello');
      await arrived;
      const elapsed = Date.now() - sent;
      assert.ok(elapsed < 1000, `notification took ${elapsed} ms`);
      assert.equal(notified, 1);
      assert.equal(((await b.pollHandshakes()).requests as JsonObject[]).length, 1);

      const r = await raw();
      const badWatch = await r.request({ type: 'watch_handshakes', node_id: id(b), signature: 'AAAA' });
      assert.equal(badWatch.type, 'error', 'a watch needs a signed body');
      watch.stop();
    });

    it('closes only the offending connection on malformed frames', async () => {
      const healthy = await registered();
      const cases: Uint8Array[] = [
        Buffer.concat([Buffer.from([0, 0, 0, 5]), Buffer.from('{bad}')]),
        Buffer.concat([Buffer.from([0, 0, 0, 7]), Buffer.from('[1,2,3]')]),
        Buffer.from([0x7f, 0xff, 0xff, 0xff]),
        Buffer.from([0, 0x10, 0, 1]),
      ];
      for (const bytes of cases) {
        const r = await raw();
        r.write(bytes);
        const reply = await r.next();
        assert.equal(reply?.type, 'error');
        assert.equal(reply?.code, 'protocol');
        await r.waitClosed();
      }
      const garbage = await raw();
      garbage.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
      assert.equal((await garbage.next())?.code, 'protocol');
      await garbage.waitClosed();
      assert.equal((await healthy.heartbeat()).type, 'heartbeat_ok', 'other connections are untouched');
      assert.equal((await registered()).nodeId, 2, 'the server still accepts new connections');
    });

    it('rate-limits registrations of new keys per IP but not known keys', async () => {
      // The limit is per process: clients take turns over the processes.
      const identities = Array.from({ length: 10 * servers.length }, () => Identity.generate());
      for (const identity of identities) await client(identity).register({ listenAddr: ':4000' });
      await assert.rejects(client().register({ listenAddr: ':4000' }), (err: unknown) => {
        return err instanceof PilotError && err.code === 'rate_limited' && /registrations/.test(err.message);
      });
      const known = identities[0] as Identity;
      assert.equal((await client(known).register({ listenAddr: ':4000' })).node_id, 1);
    });

    it('rate-limits a flood of requests from one IP', async () => {
      const r = await raw();
      const n = 600;
      for (let i = 0; i < n; i++) r.send({ type: 'list_networks' });
      let limited = 0;
      for (let i = 0; i < n; i++) if ((await r.next())?.code === 'rate_limited') limited++;
      assert.ok(limited > 0 && limited < n, `limited ${limited} of ${n}`);
    });

    it('changes polo scores only with the admin token', async () => {
      const a = await registered();
      const r = await raw();
      const refused = await r.request({ type: 'update_polo_score', node_id: id(a), delta: 5 });
      assert.equal(refused.code, 'forbidden');
      await start({ adminToken: 's3cret' });
      const b = await registered();
      const r2 = await raw();
      assert.equal(
        (await r2.request({ type: 'set_polo_score', node_id: id(b), polo_score: 7, admin_token: 'wrong' })).code,
        'forbidden',
      );
      const set = await r2.request({ type: 'set_polo_score', node_id: id(b), polo_score: 7, admin_token: 's3cret' });
      assert.deepEqual(set, { type: 'set_polo_score_ok', node_id: id(b), address: '0:0000.0000.0001', polo_score: 7 });
      const upd = await r2.request({ type: 'update_polo_score', node_id: id(b), delta: -2.9, admin_token: 's3cret' });
      assert.equal(upd.polo_score, 5);
      assert.equal((await b.getPoloScore(id(b))).polo_score, 5);
    });

    it('reports silent nodes offline without forgetting them', async () => {
      clock = Date.now();
      const a = await registered();
      const b = await registered();
      await b.setHostname('quiet');
      await b.setVisibility(true);
      clock += 181_000;
      await a.heartbeat();
      await assert.rejects(a.resolve(id(b)), isCode('unavailable'));
      await assert.rejects(a.resolveHostname('quiet'), isCode('unavailable'));
      assert.deepEqual(
        ((await a.listNodes()).nodes as JsonObject[]).map((n) => n.node_id),
        [id(a)],
      );
      assert.equal((await a.lookup(id(b))).hostname, 'quiet', 'id, key and hostname survive');
      await b.heartbeat();
      assert.equal((await a.resolve(id(b))).type, 'resolve_ok');
    });

    it('serves beacons and the backbone network', async () => {
      const r = await raw();
      assert.deepEqual(await r.request({ type: 'beacon_register', beacon_id: 9, addr: '127.0.0.1:9001' }), {
        type: 'beacon_register_ok',
        beacon_id: 9,
      });
      assert.deepEqual(await r.request({ type: 'beacon_list' }), {
        type: 'beacon_list_ok',
        beacons: [{ id: 9, addr: '127.0.0.1:9001' }],
      });
      assert.equal((await r.request({ type: 'beacon_register', beacon_id: 0, addr: 'x:1' })).code, 'invalid_argument');
      await registered();
      assert.deepEqual(await r.request({ type: 'list_networks' }), {
        type: 'list_networks_ok',
        networks: [{ id: 0, name: 'backbone', members: 1, join_rule: 'open' }],
      });
    });

    it('client reconnects after a registry restart on the same port and times out on a silent one', async () => {
      const a = await registered();
      const port = first().port;
      await closeAll();
      servers = [await RegistryServer.start({ host: '127.0.0.1', port, storePath: await kind.freshStore() })];
      const fresh = await a.lookup(1).catch((err: unknown) => err);
      assert.ok(fresh instanceof PilotError && fresh.code === 'not_found', 'the request reached the new registry');

      const silent = createServer(() => {});
      await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
      const c = new RegistryClient({ address: `127.0.0.1:${(silent.address() as AddressInfo).port}`, timeoutMs: 300 });
      const t0 = Date.now();
      await assert.rejects(c.lookup(1), isCode('timeout'));
      assert.ok(Date.now() - t0 < 1500);
      c.close();
      silent.close();
    });
    it('client closed while redialling stops at once and dials no more', async () => {
      // A port with nothing listening: every dial is refused and the client backs off between tries.
      const probe = createServer();
      await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
      const port = (probe.address() as AddressInfo).port;
      await new Promise<void>((resolve) => probe.close(() => resolve()));
      const c = new RegistryClient({ address: `127.0.0.1:${port}`, timeoutMs: 20_000 });
      const pending = c.lookup(1).catch((err: unknown) => err);
      await new Promise((r) => setTimeout(r, 100));
      const t0 = Date.now();
      c.close();
      // Something listens on the port from now on: a client that kept redialling would connect.
      let accepted = 0;
      const late = createServer((s) => {
        accepted++;
        s.destroy();
      });
      await new Promise<void>((resolve) => late.listen(port, '127.0.0.1', resolve));
      const err = await pending;
      assert.ok(
        err instanceof PilotError && err.code === 'connection_failed' && /closed/.test(err.message),
        String(err),
      );
      assert.ok(Date.now() - t0 < 1500, `request settled ${Date.now() - t0} ms after close`);
      await new Promise((r) => setTimeout(r, 1200));
      assert.equal(accepted, 0, 'no connection after close');
      late.close();
    });
  });
}
