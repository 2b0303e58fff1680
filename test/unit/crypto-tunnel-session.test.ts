import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  CryptoError,
  MAX_COUNTER,
  TunnelKeyPair,
  TunnelSession,
  type OpenResult,
  type SealedFrame,
} from '../../src/crypto/index.js';

const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));
const KEY = unhex('bd50a238bb53259a4b72ee6c2e9263a8c017e5b85651e8daeecd58c513764317');
const SYN = unhex('11010000000000000001000000000002c00003e800000000000000000200145ed874');

function pair(): { alice: TunnelSession; bob: TunnelSession } {
  return {
    alice: new TunnelSession(KEY, { noncePrefix: unhex('a1a2a3a4') }),
    bob: new TunnelSession(KEY, { noncePrefix: unhex('b1b2b3b4') }),
  };
}

function code(r: OpenResult): string {
  return r.ok ? 'ok' : r.error.code;
}

function flip(bytes: Uint8Array, index: number): Uint8Array {
  const copy = new Uint8Array(bytes);
  copy[index] = (copy[index] ?? 0) ^ 0x01;
  return copy;
}

describe('TunnelSession (PROTOCOL.md §3.3–3.4)', () => {
  it('counter starts at 1 and increments per frame', () => {
    const { alice, bob } = pair();
    const frames = [alice.seal(SYN), alice.seal(SYN), alice.seal(SYN)];
    assert.deepEqual(
      frames.map((f) => Buffer.from(f.nonce).readBigUInt64BE(4)),
      [1n, 2n, 3n],
    );
    for (const f of frames) {
      const r = bob.open(f.nonce, f.sealed);
      assert.ok(r.ok);
      assert.deepEqual(r.value, SYN);
    }
    assert.equal(bob.highestReceived, 3n);
  });

  it('refuses a replayed frame', () => {
    const { alice, bob } = pair();
    const f = alice.seal(SYN);
    assert.equal(code(bob.open(f.nonce, f.sealed)), 'ok');
    assert.equal(code(bob.open(f.nonce, f.sealed)), 'replay');
  });

  it('accepts reordered frames once each and refuses frames 256 behind', () => {
    const { alice, bob } = pair();
    const frames: SealedFrame[] = [];
    for (let i = 0; i < 300; i++) frames.push(alice.seal(SYN));
    const last = frames[299];
    assert.ok(last);
    assert.equal(code(bob.open(last.nonce, last.sealed)), 'ok');
    for (const i of [298, 100, 44, 200]) {
      const f = frames[i];
      assert.ok(f);
      assert.equal(code(bob.open(f.nonce, f.sealed)), 'ok', `frame ${i + 1}`);
      assert.equal(code(bob.open(f.nonce, f.sealed)), 'replay', `frame ${i + 1} again`);
    }
    const old = frames[43]; // counter 44, 256 behind 300
    assert.ok(old);
    assert.equal(code(bob.open(old.nonce, old.sealed)), 'too_old');
  });

  it('a forged frame with a valid counter does not consume it', () => {
    const { alice, bob } = pair();
    const genuine = alice.seal(SYN);
    const forged = flip(genuine.sealed, 0);
    assert.equal(code(bob.open(genuine.nonce, forged)), 'auth_failed');
    assert.equal(code(bob.open(genuine.nonce, genuine.sealed)), 'ok');
  });

  it('a forged frame with a far-ahead counter does not slide the window', () => {
    const { alice, bob } = pair();
    const first = alice.seal(SYN);
    const nonce = new Uint8Array(first.nonce);
    Buffer.from(nonce.buffer).writeBigUInt64BE(10_000n, 4);
    assert.equal(code(bob.open(nonce, first.sealed)), 'auth_failed');
    assert.equal(code(bob.open(first.nonce, first.sealed)), 'ok');
    assert.equal(bob.highestReceived, 1n);
  });

  it('bit flips anywhere in ciphertext, tag or nonce fail authentication', () => {
    const { alice, bob } = pair();
    const f = alice.seal(SYN);
    for (let i = 0; i < f.sealed.length; i++)
      assert.equal(code(bob.open(f.nonce, flip(f.sealed, i))), 'auth_failed', `sealed byte ${i}`);
    for (let i = 0; i < 11; i++)
      assert.equal(code(bob.open(flip(f.nonce, i), f.sealed)), 'auth_failed', `nonce byte ${i}`);
    // Flipping the counter's low bit turns 1 into 0, which the window refuses before decrypting.
    assert.equal(code(bob.open(flip(f.nonce, 11), f.sealed)), 'replay');
    assert.equal(code(bob.open(f.nonce, f.sealed)), 'ok');
  });

  it('a different key fails authentication', () => {
    const { alice } = pair();
    const f = alice.seal(SYN);
    const other = new TunnelSession(TunnelKeyPair.generate().tunnelKey(TunnelKeyPair.generate().publicKey));
    assert.equal(code(other.open(f.nonce, f.sealed)), 'auth_failed');
  });

  it('truncated input gives a typed error', () => {
    const { alice, bob } = pair();
    const f = alice.seal(SYN);
    assert.equal(code(bob.open(f.nonce, f.sealed.subarray(0, 15))), 'truncated');
    assert.equal(code(bob.open(f.nonce.subarray(0, 11), f.sealed)), 'truncated');
    assert.equal(code(bob.open(f.nonce, f.sealed.subarray(0, f.sealed.length - 1))), 'auth_failed');
    assert.equal(code(bob.open(f.nonce, f.sealed)), 'ok');
  });

  it('seals and opens an empty plaintext', () => {
    const { alice, bob } = pair();
    const f = alice.seal(new Uint8Array(0));
    assert.equal(f.sealed.length, 16);
    const r = bob.open(f.nonce, f.sealed);
    assert.ok(r.ok);
    assert.equal(r.value.length, 0);
  });

  it('refuses to seal once the counter is exhausted', () => {
    const s = new TunnelSession(KEY, { sendCounter: MAX_COUNTER - 1n });
    const f = s.seal(SYN);
    assert.equal(Buffer.from(f.nonce).readBigUInt64BE(4), MAX_COUNTER);
    assert.throws(
      () => s.seal(SYN),
      (e: unknown) => e instanceof CryptoError && e.code === 'counter_exhausted',
    );
    assert.throws(
      () => s.seal(SYN),
      (e: unknown) => e instanceof CryptoError && e.code === 'counter_exhausted',
    );
    assert.equal(s.sendCounter, MAX_COUNTER);
  });

  it('contexts made ahead (prepareSeal, prepareOpen) seal the same frames and open in order, out of order and after a forgery', () => {
    const plain = new TunnelSession(KEY, { noncePrefix: unhex('a1a2a3a4') });
    const ahead = new TunnelSession(KEY, { noncePrefix: unhex('a1a2a3a4') });
    const aad = Buffer.from('PILM');
    const frames: { nonce: Buffer; sealed: Buffer }[] = [];
    for (let i = 0; i < 6; i++) {
      const parts = [SYN, Buffer.alloc(i * 100, i)];
      const a = plain.sealParts(parts, i % 2 ? aad : undefined);
      ahead.prepareSeal();
      if (i === 3) ahead.prepareSeal(); // twice: still one context, for the next counter only
      const b = ahead.sealParts(parts, i % 2 ? aad : undefined);
      assert.deepEqual(b.nonce, a.nonce);
      assert.deepEqual(Buffer.concat(b.chunks), Buffer.concat(a.chunks));
      frames.push({ nonce: b.nonce, sealed: Buffer.concat(b.chunks) });
    }
    const bob = new TunnelSession(KEY, { noncePrefix: unhex('b1b2b3b4') });
    const open = (i: number): string => {
      bob.prepareOpen();
      const f = frames[i] as { nonce: Buffer; sealed: Buffer };
      return code(bob.open(f.nonce, f.sealed, i % 2 ? aad : undefined));
    };
    assert.equal(open(0), 'ok');
    assert.equal(open(1), 'ok');
    // Prepared for counter 3, frame 4 (counter 5) comes first: opened with a context of its own.
    assert.equal(open(4), 'ok');
    assert.equal(open(2), 'ok');
    assert.equal(open(2), 'replay');
    // A forged frame with the expected counter uses up the prepared context and fails; the real one still opens.
    bob.prepareOpen();
    const real = frames[3] as { nonce: Buffer; sealed: Buffer };
    assert.equal(code(bob.open(real.nonce, flip(real.sealed, 0), aad)), 'auth_failed');
    assert.equal(code(bob.open(real.nonce, real.sealed, aad)), 'ok');
    assert.equal(open(5), 'ok');
    assert.equal(bob.highestReceived, 6n);
  });

  it('prepareSeal never makes a context past the last counter', () => {
    const s = new TunnelSession(KEY, { sendCounter: MAX_COUNTER - 1n });
    s.prepareSeal();
    assert.equal(Buffer.from(s.seal(SYN).nonce).readBigUInt64BE(4), MAX_COUNTER);
    s.prepareSeal();
    assert.throws(
      () => s.seal(SYN),
      (e: unknown) => e instanceof CryptoError && e.code === 'counter_exhausted',
    );
  });

  it('refuses bad keys and prefixes', () => {
    assert.throws(
      () => new TunnelSession(new Uint8Array(16)),
      (e: unknown) => e instanceof CryptoError && e.code === 'bad_key',
    );
    assert.throws(
      () => new TunnelSession(KEY, { noncePrefix: new Uint8Array(3) }),
      (e: unknown) => e instanceof CryptoError && e.code === 'bad_key',
    );
  });

  it('random prefixes differ between sessions', () => {
    const prefixes = new Set(
      Array.from({ length: 8 }, () => Buffer.from(new TunnelSession(KEY).noncePrefix).toString('hex')),
    );
    assert.ok(prefixes.size > 1);
  });

  it('property: sessions derived from A and B keys exchange random packets both ways', () => {
    const a = TunnelKeyPair.fromPrivateKey(new Uint8Array(32).fill(0x11));
    const b = TunnelKeyPair.fromPrivateKey(new Uint8Array(32).fill(0x22));
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.boolean(), fc.uint8Array({ maxLength: 1200 })), { minLength: 1, maxLength: 40 }),
        (steps) => {
          const atA = new TunnelSession(a.tunnelKey(b.publicKey));
          const atB = new TunnelSession(b.tunnelKey(a.publicKey));
          for (const [fromA, packet] of steps) {
            const [tx, rx] = fromA ? [atA, atB] : [atB, atA];
            const f = tx.seal(packet);
            assert.deepEqual(f.nonce.subarray(0, 4), tx.noncePrefix);
            assert.equal(f.sealed.length, packet.length + 16);
            const r = rx.open(f.nonce, f.sealed);
            assert.ok(r.ok, r.ok ? '' : r.error.message);
            assert.deepEqual(r.value, packet);
            assert.equal(code(rx.open(f.nonce, f.sealed)), 'replay');
          }
        },
      ),
      { numRuns: 100 },
    );
  });
});
