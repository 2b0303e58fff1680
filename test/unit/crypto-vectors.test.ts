import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  CryptoError,
  Identity,
  TunnelKeyPair,
  TunnelSession,
  authMessage,
  deriveTunnelKey,
  encodeIdentityFile,
  signAuth,
  signChallenge,
  verifyChallenge,
} from '../../src/crypto/index.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));
const fill = (byte: number): Uint8Array => new Uint8Array(32).fill(byte);

const A_PUB = '7b4e909bbe7ffe44c465a220037d608ee35897d31ef972f07f74892cb0f73f13';
const B_PUB = '0faa684ed28867b97f4a6a2dee5df8ce974e76b7018e3f22a1c4cf2678570f20';
const SHARED = '9e004098efc091d4ec2663b4e9f5cfd4d7064571690b4bea97ab146ab9f35056';
const KEY = 'bd50a238bb53259a4b72ee6c2e9263a8c017e5b85651e8daeecd58c513764317';
const SYN = '11010000000000000001000000000002c00003e800000000000000000200145ed874';
const SEED33_PUB = '17cb79fb2b4120f2b1ec65e4198d6e08b28e813feb01e4a400839b85e18080ce';
const HEARTBEAT_SIG = 'YQbt9kNI8YozUKK8Kt2Pvi5dFe+sbma6gRmS3FOQpJxoqesdsA5LQ7oTQV3kJMLaMSbFppC2akKSRFc7qo7mCA==';

describe('crypto test vectors (PROTOCOL.md §3.3, §5.3, §10.2, Appendix A)', () => {
  const a = TunnelKeyPair.fromPrivateKey(fill(0x11));
  const b = TunnelKeyPair.fromPrivateKey(fill(0x22));
  const id = Identity.fromSeed(fill(0x33));

  it('X25519 public keys', () => {
    assert.equal(hex(a.publicKey), A_PUB);
    assert.equal(hex(b.publicKey), B_PUB);
  });

  it('shared secret is symmetric', () => {
    assert.equal(hex(a.sharedSecret(b.publicKey)), SHARED);
    assert.equal(hex(b.sharedSecret(a.publicKey)), SHARED);
  });

  it('tunnel key = SHA-256("pilot-tunnel-v1:" ‖ shared)', () => {
    assert.equal(hex(deriveTunnelKey(unhex(SHARED))), KEY);
    assert.equal(hex(a.tunnelKey(b.publicKey)), KEY);
    assert.equal(hex(b.tunnelKey(a.publicKey)), KEY);
  });

  it('PILS ciphertext and tag of the SYN (prefix a1a2a3a4, counter 1)', () => {
    const session = new TunnelSession(unhex(KEY), { noncePrefix: unhex('a1a2a3a4') });
    const frame = session.seal(unhex(SYN));
    assert.equal(hex(frame.nonce), 'a1a2a3a40000000000000001');
    assert.equal(
      hex(frame.sealed.subarray(0, 34)),
      '2f5ddd9069e1279529f7f6b8e2962f4d947e4ca87cdce6ad54dad981f62aa366e53d',
    );
    assert.equal(hex(frame.sealed.subarray(34)), '1caf3cfdc3d97ac580a61c06f0f076f5');
    assert.equal(session.sendCounter, 1n);
  });

  it('Ed25519 public key from seed 33×32', () => {
    assert.equal(hex(id.publicKey), SEED33_PUB);
    assert.equal(id.publicKeyBase64, 'F8t5+ytBIPKx7GXkGY1uCLKOgT/rAeSkAIObheGAgM4=');
    assert.deepEqual(id.seed(), fill(0x33));
  });

  it('PILA signed message and signature', () => {
    assert.equal(hex(authMessage(1, a.publicKey)), `6175746800000001${A_PUB}`);
    assert.equal(
      hex(signAuth(id, 1, a.publicKey)),
      'e37a2b6847555b05ff2e699f09b9e072ab510dad4397476603b7c7a54db124d3986162ed74844e8f36913c4366e04749953209a2dbe518c0ace66cca2fbc1405',
    );
  });

  it('registry heartbeat signature', () => {
    assert.equal(signChallenge(id, 'heartbeat:1'), HEARTBEAT_SIG);
    assert.equal(verifyChallenge(id.publicKeyBase64, 'heartbeat:1', HEARTBEAT_SIG), true);
  });

  it('identity file contents', () => {
    assert.equal(
      encodeIdentityFile(id),
      '{\n' +
        '  "private_key": "MzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMzMXy3n7K0Eg8rHsZeQZjW4Iso6BP+sB5KQAg5uF4YCAzg==",\n' +
        '  "public_key": "F8t5+ytBIPKx7GXkGY1uCLKOgT/rAeSkAIObheGAgM4="\n' +
        '}',
    );
  });

  it('refuses wrongly sized keys and low-order X25519 points', () => {
    assert.throws(
      () => TunnelKeyPair.fromPrivateKey(new Uint8Array(31)),
      (e: unknown) => e instanceof CryptoError && e.code === 'bad_key',
    );
    assert.throws(
      () => a.sharedSecret(new Uint8Array(31)),
      (e: unknown) => e instanceof CryptoError && e.code === 'bad_key',
    );
    assert.throws(
      () => a.sharedSecret(new Uint8Array(32)),
      (e: unknown) => e instanceof CryptoError && e.code === 'bad_key',
    );
    assert.throws(
      () => Identity.fromSeed(new Uint8Array(64)),
      (e: unknown) => e instanceof CryptoError && e.code === 'bad_key',
    );
  });

  it('generated key pairs differ and agree', () => {
    const x = TunnelKeyPair.generate();
    const y = TunnelKeyPair.generate();
    assert.notDeepEqual(x.publicKey, y.publicKey);
    assert.deepEqual(x.tunnelKey(y.publicKey), y.tunnelKey(x.publicKey));
    assert.notDeepEqual(Identity.generate().publicKey, Identity.generate().publicKey);
  });
});
