import assert from 'node:assert/strict';
import { generateKeyPairSync, sign } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { CachedEd25519Verifier } from '../../src/crypto/verify-cache.js';
import { openRegistryStore } from '../../src/registry/embedded-store.js';
import { SqliteRegistryStore } from '../../src/registry/sqlite-store.js';

const keyPair = (): { pub: string; sig: (text: string) => string } => {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const der = publicKey.export({ format: 'der', type: 'spki' });
  return {
    pub: der.subarray(der.length - 32).toString('base64'),
    sig: (text) => sign(null, Buffer.from(text), privateKey).toString('base64'),
  };
};

describe('CachedEd25519Verifier', () => {
  it('remembers verified triples only, and only the exact triple', () => {
    const v = new CachedEd25519Verifier({ keys: 2, triples: 2 });
    const a = keyPair();
    const b = keyPair();
    const good = a.sig('heartbeat:1');
    assert.equal(v.verify(a.pub, 'heartbeat:1', good, true), true);
    assert.equal(v.sizes.triples, 1);
    assert.equal(v.verify(a.pub, 'heartbeat:1', good, true), true);
    // Same signature over another text, or under another key: still refused.
    assert.equal(v.verify(a.pub, 'heartbeat:2', good, true), false);
    assert.equal(v.verify(b.pub, 'heartbeat:1', good, true), false);
    assert.equal(v.verify(a.pub, 'heartbeat:1', b.sig('heartbeat:1'), true), false);
    assert.equal(v.sizes.triples, 1, 'failures are never remembered');
    assert.equal(v.verify(a.pub, 'x', 'not base64!', true), false);
    assert.equal(v.verify('short', 'x', good, true), false);
  });

  it('stays within its bounds', () => {
    const v = new CachedEd25519Verifier({ keys: 2, triples: 2 });
    for (let i = 0; i < 5; i++) {
      const k = keyPair();
      assert.equal(v.verify(k.pub, `t${i}`, k.sig(`t${i}`), true), true);
      assert.equal(v.verify(k.pub, `u${i}`, k.sig(`u${i}`)), true);
    }
    assert.deepEqual(v.sizes, { keys: 2, triples: 2 });
  });
});

describe('SQLite group commit', () => {
  it('acknowledges concurrent writes once committed, all of them on disk', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pilot-group-commit-'));
    try {
      const path = join(dir, 'r.db');
      const store = openRegistryStore(path);
      const key = (n: number): string => Buffer.alloc(32, n).toString('base64');
      const pending = Array.from({ length: 20 }, (_, i) =>
        store.createNode({ publicKey: key(i + 1), owner: '', realAddr: `10.0.0.${i}:1` }),
      );
      const nodes = await Promise.all(pending);
      assert.deepEqual(
        nodes.map((n) => n.id),
        Array.from({ length: 20 }, (_, i) => i + 1),
      );
      // Another connection sees every acknowledged write: it was committed before the ack.
      const other = new SqliteRegistryStore(path);
      assert.equal(other.listRegistered().length, 20);
      other.close();
      await store.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses a conflicting write without losing the others of its batch', async () => {
    const store = openRegistryStore(':memory:');
    const key = (n: number): string => Buffer.alloc(32, n).toString('base64');
    const [a, b] = await Promise.all([
      store.createNode({ publicKey: key(1), owner: '', realAddr: '' }),
      store.createNode({ publicKey: key(2), owner: '', realAddr: '' }),
    ]);
    const results = await Promise.allSettled([
      store.updateNode(a.id, { hostname: 'same' }),
      store.updateNode(b.id, { hostname: 'same' }),
      store.updateNode(b.id, { tags: ['kept'] }),
    ]);
    assert.deepEqual(
      results.map((r) => r.status),
      ['fulfilled', 'rejected', 'fulfilled'],
    );
    assert.deepEqual((await store.getNode(b.id))?.tags, ['kept']);
    assert.equal((await store.getNode(a.id))?.hostname, 'same');
    await store.close();
  });
});
