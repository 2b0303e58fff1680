import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  Identity,
  TunnelKeyPair,
  signAuth,
  signChallenge,
  verifyAuth,
  verifyChallenge,
  type AuthClaim,
} from '../../src/crypto/index.js';

const id = Identity.fromSeed(new Uint8Array(32).fill(0x33));
const other = Identity.fromSeed(new Uint8Array(32).fill(0x44));
const x = TunnelKeyPair.fromPrivateKey(new Uint8Array(32).fill(0x11)).publicKey;
const y = TunnelKeyPair.fromPrivateKey(new Uint8Array(32).fill(0x22)).publicKey;

function claim(overrides: Partial<AuthClaim> = {}): AuthClaim {
  return { node: 1, x25519PublicKey: x, ed25519PublicKey: id.publicKey, signature: signAuth(id, 1, x), ...overrides };
}

describe('PILA verification (PROTOCOL.md §3.2, §3.6, §14 #11)', () => {
  it('accepts a genuine claim against the expected key', () => {
    assert.equal(verifyAuth(claim(), id.publicKey), 'ok');
  });

  it('refuses a wrong signature', () => {
    const sig = new Uint8Array(claim().signature);
    sig[10] = (sig[10] ?? 0) ^ 0x80;
    assert.equal(verifyAuth(claim({ signature: sig }), id.publicKey), 'bad_signature');
    assert.equal(verifyAuth(claim({ signature: signAuth(other, 1, x) }), id.publicKey), 'bad_signature');
    assert.equal(verifyAuth(claim({ signature: new Uint8Array(63) }), id.publicKey), 'bad_signature');
  });

  it('refuses an embedded key that differs from the expected key, even if self-consistent', () => {
    const selfSigned = claim({ ed25519PublicKey: other.publicKey, signature: signAuth(other, 1, x) });
    assert.equal(verifyAuth(selfSigned, id.publicKey), 'key_mismatch');
    assert.equal(verifyAuth(claim(), other.publicKey), 'key_mismatch');
    assert.equal(verifyAuth(claim(), new Uint8Array(0)), 'key_mismatch');
  });

  it('refuses a signature made for another node id', () => {
    assert.equal(verifyAuth(claim({ node: 2 }), id.publicKey), 'bad_signature');
    assert.equal(verifyAuth(claim({ node: -1 }), id.publicKey), 'bad_signature');
  });

  it('refuses a signature made for another X25519 key', () => {
    assert.equal(verifyAuth(claim({ x25519PublicKey: y }), id.publicKey), 'bad_signature');
    assert.equal(verifyAuth(claim({ x25519PublicKey: x.subarray(0, 31) }), id.publicKey), 'bad_signature');
  });
});

describe('registry challenge signatures (PROTOCOL.md §5.3)', () => {
  const sig = signChallenge(id, 'resolve:1:2');

  it('round-trips and binds the challenge and key', () => {
    assert.equal(verifyChallenge(id.publicKeyBase64, 'resolve:1:2', sig), true);
    assert.equal(verifyChallenge(id.publicKeyBase64, 'resolve:1:3', sig), false);
    assert.equal(verifyChallenge(other.publicKeyBase64, 'resolve:1:2', sig), false);
  });

  it('is total on malformed input', () => {
    const bad: [string, string][] = [
      ['', sig],
      [id.publicKeyBase64, ''],
      ['not base64!', sig],
      [id.publicKeyBase64, sig.replace(/=+$/, '')],
      [id.publicKeyBase64.slice(0, -4), sig],
      [id.publicKeyBase64, `${sig.slice(0, -4)}AAAA`],
      [id.publicKeyBase64.replace(/\+/g, '-').replace(/\//g, '_'), sig],
      [Buffer.alloc(32).toString('base64'), sig],
      [Buffer.alloc(48).toString('base64'), Buffer.alloc(64).toString('base64')],
    ];
    for (const [pub, s] of bad) assert.equal(verifyChallenge(pub, 'resolve:1:2', s), false, `${pub} / ${s}`);
  });
});
