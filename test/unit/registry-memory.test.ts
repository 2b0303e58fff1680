import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Identity } from '../../src/crypto/identity.js';
import { SignatureVerifier, SIGNED_AT_WINDOW_MS } from '../../src/registry/auth.js';
import { Liveness } from '../../src/registry/liveness.js';
import { PagedTimes } from '../../src/registry/paged-times.js';
import { signBody } from '../../src/registry/request-signer.js';

describe('registry per-node state in paged arrays', () => {
  it('PagedTimes keeps one value per id, sparse or dense, and frees emptied pages', () => {
    const t = new PagedTimes();
    assert.equal(t.get(5), undefined);
    for (const id of [0, 1, 1023, 1024, 0xffffffff]) t.set(id, id * 2 + 0.5);
    t.set(1, 7);
    assert.equal(t.size, 5);
    assert.equal(t.get(1), 7);
    assert.equal(t.get(0xffffffff), 0xffffffff * 2 + 0.5);
    assert.equal(t.get(2), undefined);
    t.set(3, 0);
    assert.equal(t.get(3), 0, 'zero is a value, not absence');
    t.delete(3);
    t.delete(3);
    assert.equal(t.size, 5);
    t.deleteWhere((v) => v > 1000);
    assert.deepEqual([t.get(0), t.get(1), t.get(1023), t.get(1024)], [0.5, 7, undefined, undefined]);
    const seen: number[] = [];
    t.forEachValue((v) => seen.push(v));
    assert.deepEqual(
      seen.sort((a, b) => a - b),
      [0.5, 7],
    );
  });

  it('Liveness answers from the pages: online, proven, forgotten, counted', () => {
    const l = new Liveness();
    l.touch(3, 1000);
    l.touch(70_000, 2000);
    l.proven(3, 1500);
    assert.equal(l.isOnline(3, 1000 + 180_000), true);
    assert.equal(l.isOnline(3, 1001 + 180_000), false);
    assert.equal(l.onlineCount(2000), 2);
    assert.equal(l.recentlyProven(3, 1500 + 180_000), true);
    assert.equal(l.lastSeen({ id: 3, lastSeen: 5000 }), 5000, 'the later of memory and the store');
    l.forget(3);
    assert.equal(l.isOnline(3, 1000), false);
    assert.equal(l.recentlyProven(3, 1500), false);
    assert.equal(l.onlineCount(2000), 1);
  });

  it('a new key’s register, filed under its node id, cannot be replayed once the node exists', async () => {
    const now = 1_800_000_000_000;
    const v = new SignatureVerifier(now - 1000);
    const id = Identity.generate();
    const reg = signBody(id, { type: 'register', listen_addr: '', public_key: id.publicKeyBase64 }, now);
    const opts = { staticAllowed: false };
    assert.equal(await v.verify(id.publicKeyBase64, 'x', reg, now, opts), 'signed-body');
    v.adopt(id.publicKeyBase64, 'register', 42);
    await assert.rejects(v.verify(id.publicKeyBase64, 'x', reg, now, { ...opts, nodeId: 42 }), /replay/);
    assert.equal(v.size, 1);
    const later = signBody(id, { type: 'register', listen_addr: '', public_key: id.publicKeyBase64 }, now + 5);
    assert.equal(await v.verify(id.publicKeyBase64, 'x', later, now + 5, { ...opts, nodeId: 42 }), 'signed-body');
    await v.prune(now + 5 + SIGNED_AT_WINDOW_MS + 1);
    assert.equal(v.size, 0);
  });
});
