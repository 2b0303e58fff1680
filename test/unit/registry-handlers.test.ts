import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import { Identity } from '../../src/crypto/identity.js';
import { signChallenge } from '../../src/crypto/registry-signing.js';
import { silentLogger } from '../../src/log.js';
import type { JsonObject } from '../../src/protocol/json.js';
import { SignatureVerifier } from '../../src/registry/auth.js';
import type { RegistryState } from '../../src/registry/context.js';
import { handleRequest } from '../../src/registry/dispatch.js';
import { HANDSHAKE_TTL_MS } from '../../src/registry/handlers-trust.js';
import { Liveness } from '../../src/registry/liveness.js';
import { KeyedRateLimiter } from '../../src/rate-limit.js';
import { RequestCounter } from '../../src/registry/request-counter.js';
import { signBody } from '../../src/registry/request-signer.js';
import { embeddedStore } from '../../src/registry/embedded-store.js';
import { SqliteRegistryStore } from '../../src/registry/sqlite-store.js';

describe('registry handlers', () => {
  let clock = 0;
  let state: RegistryState;
  let notified: number[];
  let db: SqliteRegistryStore;
  const call = (msg: JsonObject, remoteIp = '10.0.0.1'): Promise<JsonObject> =>
    handleRequest(state, { msg, remoteIp, remotePort: 50000 });
  const register = (identity: Identity, remoteIp: string, signed: boolean): Promise<JsonObject> => {
    const msg: JsonObject = { type: 'register', listen_addr: '0.0.0.0:4000', public_key: identity.publicKeyBase64 };
    return call(signed ? signBody(identity, msg, clock) : msg, remoteIp);
  };
  /** A request signed over its body by `identity`, at the test clock. */
  const signed = (identity: Identity, msg: JsonObject, remoteIp?: string): Promise<JsonObject> =>
    call(signBody(identity, msg, clock), remoteIp);

  beforeEach(() => {
    clock = Date.now();
    notified = [];
    db = new SqliteRegistryStore(':memory:');
    state = {
      store: embeddedStore(db),
      log: silentLogger(),
      liveness: new Liveness(),
      verifier: new SignatureVerifier(clock),
      registerLimiter: new KeyedRateLimiter<string>(10 / 60, 10),
      adminToken: undefined,
      requireSignedBody: false,
      requests: new RequestCounter(),
      now: () => clock,
      taskNow: () => clock,
      notifyHandshake: (id) => notified.push(id),
    };
  });

  it('moves a known key’s endpoint only with proof', async () => {
    const alice = Identity.generate();
    assert.equal((await register(alice, '10.0.0.1', false)).node_id, 1);
    // A Go daemon re-registering from the same IP needs no signature.
    assert.equal((await register(alice, '10.0.0.1', false)).type, 'register_ok');
    // The key has recently proven itself (signed heartbeat): an unsigned move is refused.
    await call({ type: 'heartbeat', node_id: 1, signature: signChallenge(alice, 'heartbeat:1') });
    const refused = await register(alice, '192.0.2.66', false);
    assert.equal(refused.code, 'forbidden');
    assert.match(refused.message as string, /needs a signed register/);
    assert.equal(db.getNode(1)?.realAddr, '10.0.0.1:4000');
    // After the stale period without proof, an unsigned (Go) daemon that changed networks may come back.
    clock += 181_000;
    assert.equal((await register(alice, '198.51.100.1', false)).node_id, 1);
    assert.equal(db.getNode(1)?.realAddr, '198.51.100.1:4000');
    // A signed register moves it at once.
    assert.equal((await register(alice, '192.0.2.7', true)).node_id, 1);
    assert.equal(db.getNode(1)?.realAddr, '192.0.2.7:4000');
  });

  it('never again takes a static signature or an unsigned register from a node that signed a body', async () => {
    const alice = Identity.generate();
    const go = Identity.generate();
    assert.equal((await register(alice, '10.0.0.1', true)).node_id, 1);
    assert.equal((await register(go, '10.0.0.2', false)).node_id, 2);
    assert.equal(db.getNode(1)?.signsBody, true);
    assert.equal(db.getNode(2)?.signsBody, false);
    // The Go node keeps its static challenges …
    assert.equal(
      (await call({ type: 'heartbeat', node_id: 2, signature: signChallenge(go, 'heartbeat:2') })).type,
      'heartbeat_ok',
    );
    // … but alice's static signature (e.g. one captured from a port-444 message) is refused.
    const staticReply = await call({
      type: 'request_handshake',
      from_node_id: 1,
      to_node_id: 2,
      justification: 'x',
      signature: signChallenge(alice, 'handshake:1:2'),
    });
    assert.equal(staticReply.code, 'bad_signature');
    assert.match(staticReply.message as string, /static signature/);
    assert.equal(
      (await register(alice, '10.0.0.1', false)).code,
      'bad_signature',
      'unsigned register of a body-signing key',
    );
    assert.equal((await signed(alice, { type: 'heartbeat', node_id: 1 })).type, 'heartbeat_ok');
    // Once the Go node signs a body (an upgraded daemon), the rule holds for it too.
    assert.equal((await signed(go, { type: 'heartbeat', node_id: 2 })).type, 'heartbeat_ok');
    assert.equal(
      (await call({ type: 'heartbeat', node_id: 2, signature: signChallenge(go, 'heartbeat:2') })).code,
      'bad_signature',
    );
  });

  it('advertises its features in register_ok', async () => {
    const reply = await register(Identity.generate(), '10.0.0.1', false);
    assert.deepEqual(reply.features, ['signed-body-v2', 'watch_handshakes', 'session_heartbeat']);
  });

  it('refuses static signatures and unsigned registrations with requireSignedBody', async () => {
    state = { ...state, requireSignedBody: true };
    const go = Identity.generate();
    const unsigned = await register(go, '10.0.0.1', false);
    assert.equal(unsigned.code, 'bad_signature');
    assert.match(unsigned.message as string, /requires a signed register/);
    const alice = Identity.generate();
    assert.equal((await register(alice, '10.0.0.1', true)).node_id, 1);
    assert.equal(
      (await call({ type: 'heartbeat', node_id: 1, signature: signChallenge(alice, 'heartbeat:1') })).code,
      'bad_signature',
    );
    assert.equal((await signed(alice, { type: 'heartbeat', node_id: 1 })).type, 'heartbeat_ok');
  });

  it('a signed body cannot be replayed, changed, re-aimed at another type, or re-encoded', async () => {
    const alice = Identity.generate();
    await register(alice, '10.0.0.1', true);
    const msg = signBody(alice, { type: 'set_tags', node_id: 1, tags: ['gpu'] }, clock);
    assert.equal((await call(msg)).type, 'set_tags_ok');
    assert.equal((await call(msg)).code, 'replay', 'the same request again');
    // The same signature bytes written differently: the last character before "==" carries 4
    // unused bits, so flipping one gives another text that decodes to the same 64 bytes.
    const text = msg.signature as string;
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
    const variant = `${text.slice(0, 85)}${alphabet[alphabet.indexOf(text[85] as string) ^ 1]}==`;
    assert.notEqual(variant, text);
    assert.deepEqual(Buffer.from(variant, 'base64'), Buffer.from(text, 'base64'));
    assert.equal((await call({ ...msg, signature: variant })).code, 'replay');
    const later = signBody(alice, { type: 'set_tags', node_id: 1, tags: ['gpu'] }, clock + 1);
    assert.equal((await call({ ...later, tags: ['evil'] })).code, 'bad_signature', 'content changed');
    assert.equal(
      (await call({ ...later, type: 'set_hostname', hostname: 'evil' })).code,
      'bad_signature',
      'type changed',
    );
    assert.deepEqual(db.getNode(1)?.tags, ['gpu']);
    assert.equal((await call(later)).type, 'set_tags_ok', 'the genuine later request still goes through');
  });

  it('refuses a register whose signature does not verify, and malformed keys', async () => {
    const alice = Identity.generate();
    const other = Identity.generate();
    const forged = await signed(other, { type: 'register', listen_addr: ':4000', public_key: alice.publicKeyBase64 });
    assert.equal(forged.code, 'bad_signature');
    assert.equal(
      (await call({ type: 'register', listen_addr: ':4000', public_key: 'not-a-key' })).code,
      'invalid_argument',
    );
    assert.equal((await call({ type: 'register', listen_addr: ':4000' })).code, 'invalid_argument');
    assert.equal(db.listRegistered().length, 0);
  });

  it('keeps a delivered request pending until answered, and lets it expire after 24 h', async () => {
    const a = Identity.generate();
    const b = Identity.generate();
    await register(a, '10.0.0.1', true);
    await register(b, '10.0.0.2', true);
    const req = await signed(a, { type: 'request_handshake', from_node_id: 1, to_node_id: 2, justification: 'hi' });
    assert.equal(req.status, 'delivered');
    assert.deepEqual(notified, [2]);
    clock += HANDSHAKE_TTL_MS + 1;
    // Both nodes heartbeat so that they stay online.
    await signed(a, { type: 'heartbeat', node_id: 1 });
    await signed(b, { type: 'heartbeat', node_id: 2 });
    const poll = await signed(b, { type: 'poll_handshakes', node_id: 2 });
    assert.deepEqual(poll.requests, [], 'expired requests are not delivered');
    await signed(b, { type: 'respond_handshake', node_id: 2, peer_id: 1, accept: true });
    assert.equal(db.hasTrustClaim(1, 2), false, 'an expired request no longer creates the pair');
    assert.equal(db.hasTrustClaim(2, 1), true, 'the responder’s own claim is recorded');
    assert.deepEqual(notified, [2, 1]);
  });

  it('turns a throwing store into an internal error reply', async () => {
    const a = Identity.generate();
    await register(a, '10.0.0.1', true);
    db.close();
    const reply = await call({ type: 'lookup', node_id: 1 });
    assert.equal(reply.type, 'error');
    assert.equal(reply.code, 'internal');
  });

  it('refuses report_trust and handshakes with unknown or self peers', async () => {
    const a = Identity.generate();
    await register(a, '10.0.0.1', true);
    assert.equal((await signed(a, { type: 'report_trust', node_id: 1, peer_id: 9 })).code, 'not_found');
    assert.equal((await signed(a, { type: 'report_trust', node_id: 1, peer_id: 1 })).code, 'invalid_argument');
    assert.equal((await call({ type: 'deregister', node_id: 42 })).type, 'deregister_ok');
    assert.equal((await call({ type: 'list_nodes', network_id: 3 })).code, 'not_found');
  });
});
