import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Identity } from '../../src/crypto/identity.js';
import { SignatureVerifier } from '../../src/registry/auth.js';
import { errorReply, sortKeys } from '../../src/registry/dispatch.js';
import { observedEndpoint } from '../../src/registry/endpoint.js';
import { intField, u16Field, u32Field } from '../../src/registry/fields.js';
import { checkReply } from '../../src/registry/client.js';
import { KeyedRateLimiter } from '../../src/rate-limit.js';
import { RequestError } from '../../src/registry/request-error.js';
import { signBody } from '../../src/registry/request-signer.js';
import { canonicalJson, signedBodyText } from '../../src/protocol/registry-auth.js';
import type { JsonObject, JsonValue } from '../../src/protocol/json.js';
import { signChallenge } from '../../src/crypto/registry-signing.js';
import { hostnameError, normalizeTags } from '../../src/registry/validation.js';
import { PilotError } from '../../src/errors.js';

const code = (c: string) => (err: unknown) => err instanceof RequestError && err.code === c;

describe('registry validation (PROTOCOL.md §5.8)', () => {
  it('hostnames', () => {
    for (const ok of ['', 'a', 'alpha', 'a-b', 'x1', 'a'.repeat(63)]) assert.equal(hostnameError(ok), undefined, ok);
    for (const bad of ['-a', 'a-', 'A', 'a_b', 'a.b', 'a'.repeat(64), 'localhost', 'backbone', 'broadcast', 'é']) {
      assert.ok(hostnameError(bad), bad);
    }
  });

  it('tags: one leading # stripped, ≤ 10, 1–32 chars', () => {
    assert.deepEqual(normalizeTags(['#ml', 'gpu', 'a-b']), { tags: ['ml', 'gpu', 'a-b'] });
    assert.ok('error' in normalizeTags(['##ml']));
    assert.ok('error' in normalizeTags(['#']));
    assert.ok('error' in normalizeTags(['a'.repeat(33)]));
    assert.deepEqual(normalizeTags(['a'.repeat(32)]), { tags: ['a'.repeat(32)] });
    assert.ok('error' in normalizeTags(Array.from({ length: 11 }, (_, i) => `t${i}`)));
  });

  it('numeric fields read like the reference: missing, negative or out of range is 0', () => {
    const msg = { a: 5, b: 5.9, c: -1, d: 2 ** 32, e: '7', f: 70000 };
    assert.equal(u32Field(msg, 'a'), 5);
    assert.equal(u32Field(msg, 'b'), 5);
    assert.equal(u32Field(msg, 'c'), 0);
    assert.equal(u32Field(msg, 'd'), 0);
    assert.equal(u32Field(msg, 'e'), 0);
    assert.equal(u32Field(msg, 'missing'), 0);
    assert.equal(u16Field(msg, 'f'), 0);
    assert.equal(intField(msg, 'c'), -1);
    assert.equal(intField(msg, 'e'), undefined);
  });

  it('endpoints: TCP peer IP + listen port', () => {
    assert.equal(observedEndpoint('10.0.0.1', 5555, '0.0.0.0:4000'), '10.0.0.1:4000');
    assert.equal(observedEndpoint('10.0.0.1', 5555, ':4000'), '10.0.0.1:4000');
    assert.equal(observedEndpoint('10.0.0.1', 5555, 'garbage'), '10.0.0.1:5555');
    assert.equal(observedEndpoint('::1', 5555, '[::]:4000'), '[::1]:4000');
  });

  it('replies: Go map key order and the error shape', () => {
    assert.deepEqual(Object.keys(sortKeys({ type: 'x', b: { z: 1, a: 2 }, a: [{ d: 1, c: 2 }] }) as object), [
      'a',
      'b',
      'type',
    ]);
    assert.deepEqual(errorReply('not_found', 'node 3 is not registered'), {
      type: 'error',
      error: 'request failed',
      code: 'not_found',
      message: 'node 3 is not registered',
    });
    assert.throws(
      () => checkReply({ type: 'error', error: 'request failed' }),
      (e: unknown) => e instanceof PilotError && e.code === 'refused' && e.message === 'registry: request failed',
    );
    assert.throws(
      () => checkReply(errorReply('offline', 'gone')),
      (e: unknown) => e instanceof PilotError && e.code === 'unavailable' && e.message === 'gone',
    );
    assert.throws(
      () => checkReply(errorReply('replay', 'again')),
      (e: unknown) => e instanceof PilotError && e.code === 'refused',
    );
    assert.deepEqual(checkReply({ type: 'ok' }), { type: 'ok' });
  });

  it('rate limiter: burst then refill', () => {
    const limiter = new KeyedRateLimiter<string>(1, 3);
    assert.deepEqual(
      [0, 0, 0, 0].map(() => limiter.take('ip', 0)),
      [true, true, true, false],
    );
    assert.equal(limiter.take('ip', 1000), true);
    assert.equal(limiter.take('ip', 1000), false);
    assert.equal(limiter.take('other', 1000), true);
    limiter.reap(200_000);
    assert.equal(limiter.size, 0);
  });
});

describe('registry signatures (§5.3, §14 #5)', () => {
  const id = Identity.fromSeed(new Uint8Array(32).fill(0x33));
  const key = id.publicKeyBase64;
  const now = 1_771_150_000_000;
  const goStyle = { staticAllowed: true };
  /** Signed at exactly `at` (the client signer would move times it already used forward). */
  const bodyAt = (msg: JsonObject, at: number): JsonObject => {
    const body = { ...msg, signed_at: at };
    return { ...body, signature: signChallenge(id, signedBodyText(body) as string) };
  };
  const strict = { staticAllowed: false };

  it('accepts the static challenge of Go daemons (reference vector) only where allowed', async () => {
    const v = new SignatureVerifier(now);
    const sig = 'YQbt9kNI8YozUKK8Kt2Pvi5dFe+sbma6gRmS3FOQpJxoqesdsA5LQ7oTQV3kJMLaMSbFppC2akKSRFc7qo7mCA==';
    assert.equal(await v.verify(key, 'heartbeat:1', { signature: sig }, now, goStyle), 'static');
    assert.equal(await v.verify(key, 'heartbeat:1', { signature: sig }, now, goStyle), 'static');
    await assert.rejects(v.verify(key, 'heartbeat:2', { signature: sig }, now, goStyle), code('bad_signature'));
    await assert.rejects(v.verify(key, 'heartbeat:1', {}, now, goStyle), code('bad_signature'));
    await assert.rejects(v.verify(key, 'heartbeat:1', { signature: sig }, now, strict), code('bad_signature'));
  });

  it('signed body: window ±300 s, not before the server started, each (key, type) strictly later', async () => {
    const v = new SignatureVerifier(now - 10_000);
    const msg = bodyAt({ type: 'heartbeat', node_id: 1 }, now);
    assert.equal(await v.verify(key, 'heartbeat:1', msg, now, strict), 'signed-body');
    await assert.rejects(v.verify(key, 'heartbeat:1', msg, now + 1000, strict), code('replay'));
    const late = bodyAt({ type: 'heartbeat', node_id: 1 }, now - 301_000);
    await assert.rejects(v.verify(key, 'heartbeat:1', late, now, strict), code('replay'));
    const early = bodyAt({ type: 'heartbeat', node_id: 1 }, now + 301_000);
    await assert.rejects(v.verify(key, 'heartbeat:1', early, now, strict), code('replay'));
    const beforeStart = bodyAt({ type: 'poll_handshakes', node_id: 1 }, now - 11_000);
    await assert.rejects(v.verify(key, 'poll_handshakes:1', beforeStart, now, strict), code('replay'));
    await assert.rejects(
      v.verify(key, 'heartbeat:1', { ...msg, signed_at: now + 5 }, now, strict),
      code('bad_signature'),
    );
    await assert.rejects(
      v.verify(key, 'heartbeat:1', { ...msg, signed_at: '1' }, now, strict),
      code('invalid_argument'),
    );
    // Another type from the same key has its own order.
    assert.equal(
      await v.verify(key, 'poll_handshakes:1', bodyAt({ type: 'poll_handshakes', node_id: 1 }, now - 5), now, strict),
      'signed-body',
    );
    assert.equal(v.size, 2);
    await v.prune(now + 301_000);
    assert.equal(v.size, 0);
  });

  it('the client signer makes times strictly increasing per (key, type)', async () => {
    const v = new SignatureVerifier(0);
    const at = Date.now();
    for (let i = 0; i < 5; i++)
      await v.verify(key, 'poll_handshakes:1', signBody(id, { type: 'poll_handshakes', node_id: 1 }, at), at, strict);
    assert.equal(v.size, 1);
  });

  it('canonical JSON sorts keys at every level and refuses deep nesting', () => {
    assert.equal(
      canonicalJson({ b: 1, a: [{ d: 'x', c: null }], é: true }),
      '{"a":[{"c":null,"d":"x"}],"b":1,"é":true}',
    );
    let deep: JsonValue = 1;
    for (let i = 0; i < 20; i++) deep = [deep];
    assert.equal(canonicalJson(deep), undefined);
  });
});
