import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isPilotError } from '../../src/errors.js';
import {
  GENERATED_CERT_FILE,
  GENERATED_KEY_FILE,
  loadRegistryTls,
  registryTlsFromFlags,
} from '../../src/registry/tls.js';
import { certificateFingerprint, matchesPin, normalizeFingerprint } from '../../src/registry/tls-pin.js';
import { generateSelfSigned, subjectAltNames } from '../../src/registry/tls-self-signed.js';

/** What `openssl`/Node print (`AB:CD:…`) in the form clients pin. */
const nodeFingerprint = (pem: string): string =>
  new X509Certificate(pem).fingerprint256.replaceAll(':', '').toLowerCase();

const invalidArgument = (pattern: RegExp) => (err: unknown) => {
  assert.ok(isPilotError(err), `not a PilotError: ${String(err)}`);
  assert.equal(err.code, 'invalid_argument');
  assert.match(err.message, pattern);
  return true;
};

describe('registry TLS certificate', () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pilot-registry-tls-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('generates a self-signed ECDSA P-256 certificate with the registry names, valid for years', async () => {
    const pair = await generateSelfSigned('10.1.2.3');
    const cert = new X509Certificate(pair.cert);
    assert.equal(cert.subject, 'CN=pilot-registry');
    assert.equal(cert.issuer, 'CN=pilot-registry');
    assert.equal(cert.publicKey.asymmetricKeyType, 'ec');
    assert.equal(cert.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.equal(
      cert.subjectAltName,
      'DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, IP Address:10.1.2.3',
    );
    assert.ok(new Date(cert.validTo).getTime() - Date.now() > 9 * 365 * 86_400_000, cert.validTo);
    assert.ok(new Date(cert.validFrom).getTime() <= Date.now());
    assert.ok(cert.verify(cert.publicKey), 'self-signed');
  });

  it('adds the listen host to the names only when it is a specific IP literal', () => {
    const values = (host: string): string[] => subjectAltNames(host).map((n) => n.value);
    assert.deepEqual(values(''), ['localhost', '127.0.0.1', '::1']);
    assert.deepEqual(values('0.0.0.0'), ['localhost', '127.0.0.1', '::1']);
    assert.deepEqual(values('registry.example'), ['localhost', '127.0.0.1', '::1']);
    assert.deepEqual(values('127.0.0.1'), ['localhost', '127.0.0.1', '::1']);
    assert.deepEqual(values('fd00::5'), ['localhost', '127.0.0.1', '::1', 'fd00::5']);
  });

  it('fingerprint = lower-case hex SHA-256 of the DER, as Node computes it', async () => {
    const { cert } = await generateSelfSigned('');
    const x509 = new X509Certificate(cert);
    const fingerprint = certificateFingerprint(x509.raw);
    assert.match(fingerprint, /^[0-9a-f]{64}$/);
    assert.equal(fingerprint, nodeFingerprint(cert));
    assert.ok(matchesPin(x509.raw, fingerprint));
    const other = fingerprint.replace(/^./, fingerprint.startsWith('0') ? '1' : '0');
    assert.equal(matchesPin(x509.raw, other), false);
    assert.equal(matchesPin(x509.raw, 'abcd'), false, 'a short pin never matches');
  });

  it('normalises a typed fingerprint (upper case, colons) and refuses anything else', () => {
    const hex = 'ab'.repeat(32);
    assert.equal(normalizeFingerprint(hex.toUpperCase()), hex);
    assert.equal(normalizeFingerprint(`${'AB:'.repeat(31)}AB`), hex);
    assert.equal(normalizeFingerprint(` ${hex}\n`), hex);
    assert.throws(() => normalizeFingerprint('ab'.repeat(31)), invalidArgument(/64 hex digits/));
    assert.throws(() => normalizeFingerprint(`${'ab'.repeat(31)}zz`), invalidArgument(/invalid registry fingerprint/));
    assert.throws(
      () => normalizeFingerprint('', '-registry-fingerprint'),
      invalidArgument(/invalid -registry-fingerprint ""/),
    );
    assert.throws(
      () => normalizeFingerprint('x'.repeat(5000)),
      (err: unknown) => isPilotError(err) && err.message.length < 300,
    );
  });

  it('generates the certificate once next to the store (key 0600) and reuses it', async () => {
    const storePath = join(dir, 'persist', 'registry.db');
    const first = await loadRegistryTls({}, { storePath, listenHost: '127.0.0.1' });
    assert.equal(first.origin, 'generated');
    assert.equal(first.certPath, join(dir, 'persist', GENERATED_CERT_FILE));
    const keyPath = join(dir, 'persist', GENERATED_KEY_FILE);
    assert.equal((await stat(keyPath)).mode & 0o777, 0o600);
    assert.equal(await readFile(first.certPath, 'utf8'), first.cert);
    assert.equal(first.fingerprint, nodeFingerprint(first.cert));

    const second = await loadRegistryTls({}, { storePath, listenHost: '127.0.0.1' });
    assert.equal(second.origin, 'stored');
    assert.equal(second.fingerprint, first.fingerprint, 'the pinned fingerprint survives a restart');
    assert.equal(second.key, first.key);
  });

  it('keeps the generated certificate in memory for a :memory: store', async () => {
    const a = await loadRegistryTls({}, { storePath: ':memory:', listenHost: '' });
    const b = await loadRegistryTls({}, { storePath: ':memory:', listenHost: '' });
    assert.equal(a.origin, 'ephemeral');
    assert.equal(a.certPath, undefined);
    assert.notEqual(a.fingerprint, b.fingerprint);
  });

  it('replaces a key left without its certificate, refuses a certificate without its key or a broken pair', async () => {
    const storePath = join(dir, 'partial', 'registry.db');
    const generated = await loadRegistryTls({}, { storePath, listenHost: '' });
    const certPath = join(dir, 'partial', GENERATED_CERT_FILE);
    const keyPath = join(dir, 'partial', GENERATED_KEY_FILE);

    await unlink(certPath);
    const again = await loadRegistryTls({}, { storePath, listenHost: '' });
    assert.equal(again.origin, 'generated', 'an interrupted generation is redone');
    assert.notEqual(again.fingerprint, generated.fingerprint);

    const other = await generateSelfSigned('');
    await writeFile(keyPath, other.key);
    await assert.rejects(loadRegistryTls({}, { storePath, listenHost: '' }), (err: unknown) => {
      invalidArgument(/is not the private key of/)(err);
      assert.match((err as Error & { hint?: string }).hint ?? '', /remove .*registry-tls\.crt and .*registry-tls\.key/);
      return true;
    });
    await unlink(keyPath);
    await assert.rejects(
      loadRegistryTls({}, { storePath, listenHost: '' }),
      invalidArgument(/exists but its key .* is missing/),
    );
  });

  it('loads the operator files: both must be readable PEM and belong together', async () => {
    const pair = await generateSelfSigned('');
    const certFile = join(dir, 'op.crt');
    const keyFile = join(dir, 'op.key');
    await writeFile(certFile, pair.cert);
    await writeFile(keyFile, pair.key, { mode: 0o600 });
    const opts = { storePath: join(dir, 'op', 'registry.db'), listenHost: '' };
    const loaded = await loadRegistryTls({ certFile, keyFile }, opts);
    assert.equal(loaded.origin, 'files');
    assert.equal(loaded.fingerprint, nodeFingerprint(pair.cert));
    await assert.rejects(stat(join(dir, 'op', GENERATED_CERT_FILE)), 'nothing is generated');

    await assert.rejects(
      loadRegistryTls({ certFile: join(dir, 'missing.crt'), keyFile }, opts),
      invalidArgument(/cannot read the TLS certificate .*missing\.crt: ENOENT/),
    );
    await assert.rejects(
      loadRegistryTls({ certFile: keyFile, keyFile }, opts),
      invalidArgument(/op\.key does not hold a PEM certificate/),
    );
    await assert.rejects(
      loadRegistryTls({ certFile, keyFile: certFile }, opts),
      invalidArgument(/op\.crt does not hold a PEM private key/),
    );
    const stranger = join(dir, 'stranger.key');
    await writeFile(stranger, (await generateSelfSigned('')).key);
    await assert.rejects(
      loadRegistryTls({ certFile, keyFile: stranger }, opts),
      invalidArgument(/stranger\.key is not the private key of .*op\.crt/),
    );
    const huge = join(dir, 'huge.crt');
    await writeFile(huge, Buffer.alloc(2 * 1024 * 1024, 0x41));
    await assert.rejects(
      loadRegistryTls({ certFile: huge, keyFile }, opts),
      invalidArgument(/too large for a PEM file/),
    );
  });

  it('-tls, -tls-cert, -tls-key: both files or neither, and only with -tls', () => {
    assert.equal(registryTlsFromFlags({}), undefined);
    assert.deepEqual(registryTlsFromFlags({ tls: true }), {});
    assert.deepEqual(registryTlsFromFlags({ tls: true, 'tls-cert': 'c.pem', 'tls-key': 'k.pem' }), {
      certFile: 'c.pem',
      keyFile: 'k.pem',
    });
    assert.throws(() => registryTlsFromFlags({ tls: true, 'tls-cert': 'c.pem' }), invalidArgument(/go together/));
    assert.throws(() => registryTlsFromFlags({ tls: true, 'tls-key': 'k.pem' }), invalidArgument(/go together/));
    assert.throws(
      () => registryTlsFromFlags({ 'tls-cert': 'c.pem', 'tls-key': 'k.pem' }),
      invalidArgument(/need -tls/),
    );
  });
});
