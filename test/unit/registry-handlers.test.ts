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
import { RateLimiter } from '../../src/registry/rate-limit.js';
import { RequestCounter } from '../../src/registry/request-counter.js';
import { signedFields } from '../../src/registry/request-signer.js';
import { SqliteRegistryStore } from '../../src/registry/sqlite-store.js';

describe('registry handlers', () => {
  let clock = 0;
  let state: RegistryState;
  let notified: number[];
  const call = (msg: JsonObject, remoteIp = '10.0.0.1'): JsonObject => handleRequest(state, { msg, remoteIp, remotePort: 50000 });
  const register = (identity: Identity, remoteIp: string, signed: boolean): JsonObject =>
    call(
      {
        type: 'register',
        listen_addr: '0.0.0.0:4000',
        public_key: identity.publicKeyBase64,
        ...(signed ? signedFields(identity, `register:${identity.publicKeyBase64}`, clock) : {}),
      },
      remoteIp,
    );

  beforeEach(() => {
    clock = Date.now();
    notified = [];
    state = {
      store: new SqliteRegistryStore(':memory:'),
      log: silentLogger(),
      liveness: new Liveness(),
      verifier: new SignatureVerifier(),
      registerLimiter: new RateLimiter(10 / 60, 10),
      adminToken: undefined,
      requests: new RequestCounter(),
      now: () => clock,
      taskNow: () => clock,
      notifyHandshake: (id) => notified.push(id),
    };
  });

  it('moves a known key’s endpoint only with proof', () => {
    const alice = Identity.generate();
    assert.equal(register(alice, '10.0.0.1', false).node_id, 1);
    // A Go daemon re-registering from the same IP needs no signature.
    assert.equal(register(alice, '10.0.0.1', false).type, 'register_ok');
    // The key has recently proven itself (signed heartbeat): an unsigned move is refused.
    call({ type: 'heartbeat', node_id: 1, signature: signChallenge(alice, 'heartbeat:1') });
    const refused = register(alice, '192.0.2.66', false);
    assert.equal(refused.code, 'forbidden');
    assert.match(refused.message as string, /needs a signature/);
    assert.equal(state.store.getNode(1)?.realAddr, '10.0.0.1:4000');
    // A signed register moves it.
    assert.equal(register(alice, '192.0.2.7', true).node_id, 1);
    assert.equal(state.store.getNode(1)?.realAddr, '192.0.2.7:4000');
    // After the stale period without proof, an unsigned daemon that changed networks may come back.
    clock += 181_000;
    assert.equal(register(alice, '198.51.100.1', false).node_id, 1);
    assert.equal(state.store.getNode(1)?.realAddr, '198.51.100.1:4000');
  });

  it('refuses a register whose signature does not verify, and malformed keys', () => {
    const alice = Identity.generate();
    const other = Identity.generate();
    const forged = call({
      type: 'register',
      listen_addr: ':4000',
      public_key: alice.publicKeyBase64,
      ...signedFields(other, `register:${alice.publicKeyBase64}`, clock),
    });
    assert.equal(forged.code, 'bad_signature');
    assert.equal(call({ type: 'register', listen_addr: ':4000', public_key: 'not-a-key' }).code, 'invalid_argument');
    assert.equal(call({ type: 'register', listen_addr: ':4000' }).code, 'invalid_argument');
    assert.equal(state.store.listRegistered().length, 0);
  });

  it('keeps a delivered request pending until answered, and lets it expire after 24 h', () => {
    const a = Identity.generate();
    const b = Identity.generate();
    register(a, '10.0.0.1', true);
    register(b, '10.0.0.2', true);
    const req = call({ type: 'request_handshake', from_node_id: 1, to_node_id: 2, justification: 'hi', ...signedFields(a, 'handshake:1:2', clock) });
    assert.equal(req.status, 'delivered');
    assert.deepEqual(notified, [2]);
    clock += HANDSHAKE_TTL_MS + 1;
    // Both nodes heartbeat so that they stay online.
    call({ type: 'heartbeat', node_id: 1, ...signedFields(a, 'heartbeat:1', clock) });
    call({ type: 'heartbeat', node_id: 2, ...signedFields(b, 'heartbeat:2', clock) });
    const poll = call({ type: 'poll_handshakes', node_id: 2, ...signedFields(b, 'poll_handshakes:2', clock) });
    assert.deepEqual(poll.requests, [], 'expired requests are not delivered');
    call({ type: 'respond_handshake', node_id: 2, peer_id: 1, accept: true, ...signedFields(b, 'respond:2:1', clock) });
    assert.equal(state.store.hasTrustClaim(1, 2), false, 'an expired request no longer creates the pair');
    assert.equal(state.store.hasTrustClaim(2, 1), true, 'the responder’s own claim is recorded');
    assert.deepEqual(notified, [2, 1]);
  });

  it('turns a throwing store into an internal error reply', () => {
    const a = Identity.generate();
    register(a, '10.0.0.1', true);
    state.store.close();
    const reply = call({ type: 'lookup', node_id: 1 });
    assert.equal(reply.type, 'error');
    assert.equal(reply.code, 'internal');
  });

  it('refuses report_trust and handshakes with unknown or self peers', () => {
    const a = Identity.generate();
    register(a, '10.0.0.1', true);
    assert.equal(call({ type: 'report_trust', node_id: 1, peer_id: 9, ...signedFields(a, 'report_trust:1:9', clock) }).code, 'not_found');
    assert.equal(call({ type: 'report_trust', node_id: 1, peer_id: 1, ...signedFields(a, 'report_trust:1:1', clock) }).code, 'invalid_argument');
    assert.equal(call({ type: 'deregister', node_id: 42 }).type, 'deregister_ok');
    assert.equal(call({ type: 'list_nodes', network_id: 3 }).code, 'not_found');
  });
});
