import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { TunnelSession } from '../../src/crypto/index.js';
import { ContextPrep } from '../../src/tunnel/context-prep.js';
import { MAX_ACTIVE_PREFIXES, PeerCrypto } from '../../src/tunnel/peer-crypto.js';

const key = new Uint8Array(32).fill(7);
const peerX = new Uint8Array(32).fill(9);
const plain = Buffer.from('packet bytes');

/** What a Go peer does after every key-exchange frame: new prefix, counter from 1, same key. */
const resetSender = (): TunnelSession => new TunnelSession(key);

describe('PeerCrypto receive windows (PROTOCOL.md §3.4, §14 #10)', () => {
  it('accepts in-window frames once and refuses replays', () => {
    const ctx = new PeerCrypto(key, peerX);
    const sender = resetSender();
    const f1 = sender.seal(plain);
    const f2 = sender.seal(plain);
    assert.ok(ctx.open(f2.nonce, f2.sealed).ok);
    assert.ok(ctx.open(f1.nonce, f1.sealed).ok);
    const again = ctx.open(f1.nonce, f1.sealed);
    assert.equal(again.ok ? 'ok' : again.error.code, 'replay');
  });

  it('gives a reset sender a fresh window while the old prefix keeps its own', () => {
    const ctx = new PeerCrypto(key, peerX);
    const before = resetSender();
    const old = before.seal(plain);
    assert.ok(ctx.open(old.nonce, old.sealed).ok);
    const after = resetSender();
    const fresh = after.seal(plain);
    assert.ok(ctx.open(fresh.nonce, fresh.sealed).ok, 'new prefix starts at counter 1');
    const replayed = ctx.open(old.nonce, old.sealed);
    assert.equal(replayed.ok ? 'ok' : replayed.error.code, 'replay');
  });

  it('refuses frames of prefixes whose window was evicted', () => {
    const ctx = new PeerCrypto(key, peerX);
    const first = resetSender();
    const kept = first.seal(plain);
    const late = first.seal(plain);
    assert.ok(ctx.open(kept.nonce, kept.sealed).ok);
    for (let i = 0; i < MAX_ACTIVE_PREFIXES; i++) {
      const s = resetSender().seal(plain);
      assert.ok(ctx.open(s.nonce, s.sealed).ok);
    }
    const result = ctx.open(late.nonce, late.sealed);
    assert.equal(result.ok ? 'ok' : result.error.code, 'too_old');
  });

  it('forged frames change nothing, and our own frames reflected back are refused', () => {
    const ctx = new PeerCrypto(key, peerX);
    const sender = resetSender();
    const good = sender.seal(plain);
    for (let i = 0; i < 10; i++) {
      const nonce = randomBytes(12);
      const r = ctx.open(nonce, randomBytes(40));
      assert.equal(r.ok ? 'ok' : r.error.code, 'auth_failed');
    }
    assert.ok(ctx.open(good.nonce, good.sealed).ok, 'forgeries did not evict the window');
    const own = ctx.send.seal(plain);
    const reflected = ctx.open(own.nonce, own.sealed);
    assert.equal(reflected.ok ? 'ok' : reflected.error.code, 'replay');
    assert.ok(ctx.isKeyFrom(peerX));
    assert.equal(ctx.isKeyFrom(new Uint8Array(32)), false);
  });
});

describe('ContextPrep (contexts made ahead after an exchange)', () => {
  class CountingCrypto extends PeerCrypto {
    prepared = 0;
    override prepare(): void {
      this.prepared++;
      super.prepare();
    }
  }

  it('prepares the peers used, each once, the delay after the first use, whatever traffic follows', () => {
    const prep = new ContextPrep(3);
    const a = new CountingCrypto(key, peerX);
    const b = new CountingCrypto(key, peerX);
    assert.equal(prep.dueAt, undefined, 'nothing to prepare');
    prep.used(a, 100);
    prep.used(b, 101);
    prep.used(a, 102);
    assert.equal(prep.dueAt, 103, 'the delay after the first use: one wake-up per exchange');
    prep.prepareIfDue(102);
    assert.deepEqual([a.prepared, b.prepared], [0, 0], 'not before');
    prep.prepareIfDue(103);
    assert.deepEqual([a.prepared, b.prepared], [1, 1]);
    assert.equal(prep.dueAt, undefined);
    prep.prepareIfDue(200);
    assert.deepEqual([a.prepared, b.prepared], [1, 1], 'nothing used since');
    prep.used(b, 300);
    assert.equal(prep.dueAt, 303);
    prep.prepareIfDue(303);
    assert.deepEqual([a.prepared, b.prepared], [1, 2], 'only the peer used again');
  });

  it('a prepared open context is used for the answer and a prepared seal for the next frame', () => {
    const ours = new PeerCrypto(key, peerX);
    const theirs = resetSender();
    const first = theirs.seal(plain);
    assert.ok(ours.open(first.nonce, first.sealed).ok, 'the prefix of the peer is known once a frame opened');
    ours.prepare();
    const counterBefore = ours.send.sendCounter;
    const reply = theirs.seal(plain);
    const opened = ours.open(reply.nonce, reply.sealed);
    assert.ok(opened.ok);
    ours.prepare();
    const out = ours.send.seal(plain);
    assert.equal(ours.send.sendCounter, counterBefore + 1n, 'no counter skipped by a prepared seal');
    assert.ok(theirs.open(out.nonce, out.sealed).ok);
  });

  it('a peer prepared after traffic both ways still seals and opens every frame', () => {
    const ours = new PeerCrypto(key, peerX);
    const theirs = resetSender();
    for (let i = 0; i < 4; i++) {
      ours.prepare();
      const out = ours.send.seal(plain);
      assert.ok(theirs.open(out.nonce, out.sealed).ok);
      const back = theirs.seal(plain);
      if (i % 2 === 0) ours.prepare();
      const opened = ours.open(back.nonce, back.sealed);
      assert.ok(opened.ok);
      assert.deepEqual(Buffer.from(opened.value), plain);
    }
  });
});
