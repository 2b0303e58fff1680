import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  CryptoError,
  Identity,
  decodeIdentityFile,
  encodeIdentityFile,
  ensureDir,
  loadOrCreateIdentity,
  verifySignature,
  writeFileAtomic,
} from '../../src/crypto/index.js';

const isCode = (code: string) => (e: unknown) => e instanceof CryptoError && e.code === code;
const mode = async (path: string): Promise<number> => (await stat(path)).mode & 0o777;
const posix = process.platform !== 'win32';

describe('identity file (PROTOCOL.md §10.2)', () => {
  let root = '';
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'pilot-crypto-'));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('creates the file 0600 in a new 0700 directory and reloads it identically', async () => {
    const dir = join(root, 'home', '.pilot');
    const path = join(dir, 'identity.json');
    const first = await loadOrCreateIdentity(path);
    if (posix) {
      assert.equal(await mode(dir), 0o700);
      assert.equal(await mode(path), 0o600);
    }
    const text = await readFile(path, 'utf8');
    assert.equal(text, encodeIdentityFile(first));
    assert.ok(!text.endsWith('\n'));
    const second = await loadOrCreateIdentity(path);
    assert.deepEqual(second.publicKey, first.publicKey);
    assert.deepEqual(second.seed(), first.seed());
    assert.equal(await readFile(path, 'utf8'), text);
    assert.deepEqual(await readdir(dir), ['identity.json']);
  });

  it('concurrent creators end up with one identity', async () => {
    const path = join(root, 'race', 'identity.json');
    const ids = await Promise.all(Array.from({ length: 4 }, () => loadOrCreateIdentity(path)));
    const onDisk = decodeIdentityFile(await readFile(path, 'utf8'));
    for (const id of ids) assert.deepEqual(id.publicKey, onDisk.publicKey);
  });

  it('loads a file written by the reference and signs with it', async () => {
    const path = join(root, 'ref.json');
    const vector = encodeIdentityFile(Identity.fromSeed(new Uint8Array(32).fill(0x33)));
    await writeFile(path, vector);
    const id = await loadOrCreateIdentity(path);
    assert.equal(id.publicKeyBase64, 'F8t5+ytBIPKx7GXkGY1uCLKOgT/rAeSkAIObheGAgM4=');
    const msg = new TextEncoder().encode('hello');
    assert.equal(verifySignature(id.publicKey, msg, id.sign(msg)), true);
    assert.equal(verifySignature(id.publicKey, new TextEncoder().encode('hellO'), id.sign(msg)), false);
  });

  it('mismatched public key is an error and the file is left untouched', async () => {
    const path = join(root, 'mismatch.json');
    const a = JSON.parse(encodeIdentityFile(Identity.fromSeed(new Uint8Array(32).fill(1)))) as Record<string, string>;
    const b = Identity.fromSeed(new Uint8Array(32).fill(2));
    const text = JSON.stringify({ private_key: a.private_key, public_key: b.publicKeyBase64 }, null, 2);
    await writeFile(path, text, { mode: 0o600 });
    await assert.rejects(loadOrCreateIdentity(path), isCode('key_mismatch'));
    assert.equal(await readFile(path, 'utf8'), text);
  });

  it("private key whose second half is not the seed's public key is a mismatch", () => {
    const good = Identity.fromSeed(new Uint8Array(32).fill(1));
    const wrongHalf = Buffer.concat([Buffer.from(good.seed()), Buffer.alloc(32, 9)]).toString('base64');
    const text = JSON.stringify({ private_key: wrongHalf, public_key: good.publicKeyBase64 });
    assert.throws(() => decodeIdentityFile(text), isCode('key_mismatch'));
  });

  it('corrupted JSON is an error and the file is left untouched', async () => {
    const path = join(root, 'corrupt.json');
    const text = '{"private_key": "MzMz';
    await writeFile(path, text, { mode: 0o600 });
    await assert.rejects(loadOrCreateIdentity(path), isCode('bad_identity'));
    assert.equal(await readFile(path, 'utf8'), text);
  });

  it('malformed fields are errors', () => {
    const pub = 'F8t5+ytBIPKx7GXkGY1uCLKOgT/rAeSkAIObheGAgM4=';
    for (const text of [
      '[]',
      'null',
      '{}',
      JSON.stringify({ private_key: 5, public_key: pub }),
      JSON.stringify({ private_key: 'MzMz', public_key: pub }),
      JSON.stringify({ private_key: '!!!!', public_key: pub }),
      JSON.stringify({ private_key: Buffer.alloc(64).toString('base64'), public_key: 'F8t5' }),
    ]) {
      assert.throws(() => decodeIdentityFile(text), isCode('bad_identity'), text);
    }
  });
});

describe('atomic file writes', () => {
  let root = '';
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'pilot-atomic-'));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('replaces content, applies the mode exactly and leaves no temp file', async () => {
    const path = join(root, 'f.json');
    await writeFileAtomic(path, 'one');
    await writeFileAtomic(path, new TextEncoder().encode('two'), { mode: 0o644 });
    assert.equal(await readFile(path, 'utf8'), 'two');
    if (posix) assert.equal(await mode(path), 0o644);
    assert.deepEqual(await readdir(root), ['f.json']);
  });

  it('exclusive mode refuses to replace and cleans up', async () => {
    const path = join(root, 'x.json');
    await writeFileAtomic(path, 'first', { exclusive: true });
    await assert.rejects(
      writeFileAtomic(path, 'second', { exclusive: true }),
      (e: unknown) => (e as NodeJS.ErrnoException).code === 'EEXIST',
    );
    assert.equal(await readFile(path, 'utf8'), 'first');
    assert.deepEqual((await readdir(root)).sort(), ['f.json', 'x.json']);
  });

  it('ensureDir creates nested directories 0700 and keeps existing ones', async () => {
    const dir = join(root, 'a', 'b');
    await ensureDir(dir);
    await ensureDir(dir);
    if (posix) assert.equal(await mode(dir), 0o700);
    // A relative path, several new levels deep (each new level's parent is synced).
    const cwd = process.cwd();
    process.chdir(root);
    try {
      await ensureDir(join('r1', 'r2', 'r3'));
    } finally {
      process.chdir(cwd);
    }
    assert.deepEqual(await readdir(join(root, 'r1', 'r2')), ['r3']);
  });
});
