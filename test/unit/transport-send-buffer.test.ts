import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BlockPool, MAX_BLOCK_BYTES, MIN_BLOCK_BYTES } from '../../src/transport/block-pool.js';
import { VIEW_AT_LEAST } from '../../src/transport/byte-queue.js';
import { SendBuffer } from '../../src/transport/send-buffer.js';

/** A pool that records what it hands out and gets back. */
class WatchedPool extends BlockPool {
  readonly taken: Buffer[] = [];
  readonly given: Buffer[] = [];
  override take(bytes: number): Buffer {
    const block = super.take(bytes);
    this.taken.push(block);
    return block;
  }
  override give(block: Buffer): void {
    this.given.push(block);
    super.give(block);
  }
}

const filled = (n: number, byte: number): Buffer => Buffer.alloc(n, byte);

describe('send buffer', () => {
  it('copies what it is given: the writer may change its buffer at once', () => {
    const buf = new SendBuffer(new BlockPool());
    const small = filled(100, 1);
    const large = filled(VIEW_AT_LEAST * 2, 2);
    buf.append(small);
    buf.append(large);
    small.fill(9);
    large.fill(9);
    assert.deepEqual(buf.shift(100), filled(100, 1));
    assert.deepEqual(buf.shift(VIEW_AT_LEAST * 2), filled(VIEW_AT_LEAST * 2, 2));
  });

  it('puts a large write in a block of its own and small ones one after another in a shared block', () => {
    const pool = new WatchedPool();
    const buf = new SendBuffer(pool);
    buf.append(filled(100, 1));
    buf.append(filled(200, 2));
    assert.deepEqual(
      pool.taken.map((b) => b.length),
      [MIN_BLOCK_BYTES],
    );
    const smallOnes = buf.peekPiece(300, VIEW_AT_LEAST);
    assert.equal(smallOnes.length, 300);
    assert.equal(
      smallOnes.buffer,
      pool.taken[0]?.buffer,
      'the two small writes go out as one view, not merged by a copy',
    );
    buf.skip(300);
    buf.append(filled(60 * 1024, 3));
    buf.append(filled(10, 4));
    assert.deepEqual(
      pool.taken.map((b) => b.length),
      [MIN_BLOCK_BYTES, 64 * 1024, MIN_BLOCK_BYTES],
      'a small write after a large one starts a new shared block',
    );
    const segment = buf.peekPiece(60 * 1024, VIEW_AT_LEAST);
    assert.equal(segment.buffer, pool.taken[1]?.buffer, 'the segment is a view of the block');
  });

  it('gives a block back only once every byte written into it is acknowledged', () => {
    const pool = new WatchedPool();
    const buf = new SendBuffer(pool);
    buf.append(filled(1000, 1));
    buf.append(filled(40_000, 2));
    buf.append(filled(50_000, 3));
    buf.skip(91_000);
    buf.acknowledge(999);
    assert.equal(pool.given.length, 0);
    buf.acknowledge(1 + 39_999);
    assert.deepEqual(pool.given, [pool.taken[0]], "the small write's block, not yet the first large one");
    buf.acknowledge(1);
    assert.deepEqual(pool.given, [pool.taken[0], pool.taken[1]]);
    buf.acknowledge(49_999);
    assert.equal(pool.given.length, 2);
    buf.acknowledge(1);
    assert.deepEqual(pool.given, pool.taken);
  });

  it('starts a new shared block once the last one is acknowledged, and when it is full', () => {
    const pool = new WatchedPool();
    const buf = new SendBuffer(pool);
    buf.append(filled(10_000, 1));
    buf.skip(10_000);
    buf.acknowledge(10_000);
    assert.equal(pool.given.length, 1);
    buf.append(filled(10_000, 2));
    buf.append(filled(10_000, 3));
    assert.equal(pool.taken.length, 3, 'the acknowledged block took no more writes; the second did not fit');
    assert.deepEqual(buf.shift(20_000), Buffer.concat([filled(10_000, 2), filled(10_000, 3)]));
  });

  it('keeps bytes handed over (copy false) as they are, in order with the copied ones', () => {
    const pool = new WatchedPool();
    const buf = new SendBuffer(pool);
    const handed = filled(40_000, 2);
    buf.append(filled(100, 1));
    buf.append(handed, false);
    buf.append(filled(100, 3));
    assert.equal(pool.taken.length, 2, 'the small write after the handed-over one starts a new block');
    buf.skip(100);
    assert.equal(buf.peekPiece(40_000, VIEW_AT_LEAST).buffer, handed.buffer, "sent from the caller's memory");
    buf.skip(40_000);
    assert.deepEqual(buf.shift(100), filled(100, 3));
    buf.acknowledge(100 + 40_000);
    assert.deepEqual(pool.given, [pool.taken[0]], "nothing of the caller's goes to the pool");
    buf.acknowledge(100);
    assert.deepEqual(pool.given, pool.taken);
  });

  it('splits a write larger than the largest block', () => {
    const pool = new WatchedPool();
    const buf = new SendBuffer(pool);
    const data = Buffer.alloc(MAX_BLOCK_BYTES * 2 + 5000);
    for (let i = 0; i < data.length; i++) data[i] = i & 0xff;
    buf.append(data);
    assert.deepEqual(
      pool.taken.map((b) => b.length),
      [MAX_BLOCK_BYTES, MAX_BLOCK_BYTES, MIN_BLOCK_BYTES],
    );
    assert.ok(buf.shift(data.length).equals(data));
    buf.acknowledge(data.length);
    assert.equal(pool.given.length, 3);
  });

  it('after a reset gives nothing back: packets already handed on may still read the blocks', () => {
    const pool = new WatchedPool();
    const buf = new SendBuffer(pool);
    buf.append(filled(64 * 1024, 1));
    buf.skip(64 * 1024);
    buf.clear();
    buf.acknowledge(64 * 1024);
    assert.equal(pool.given.length, 0);
  });
});

describe('block pool', () => {
  it('rounds sizes up to a power of two from 16 KiB and reuses the last block given back', () => {
    const pool = new BlockPool();
    assert.equal(pool.take(1).length, MIN_BLOCK_BYTES);
    assert.equal(pool.take(MIN_BLOCK_BYTES + 1).length, MIN_BLOCK_BYTES * 2);
    const block = pool.take(60 * 1024);
    pool.give(block);
    assert.equal(pool.idleBytes, 64 * 1024);
    assert.equal(pool.take(50 * 1024), block);
    assert.equal(pool.idleBytes, 0);
    assert.throws(() => pool.take(MAX_BLOCK_BYTES + 1), RangeError);
  });

  it('keeps at most its idle limit of free blocks, and no buffer it did not make', () => {
    const pool = new BlockPool(100 * 1024);
    const blocks = [pool.take(64 * 1024), pool.take(64 * 1024)];
    for (const b of blocks) pool.give(b);
    assert.equal(pool.idleBytes, 64 * 1024);
    pool.give(Buffer.alloc(1000));
    assert.equal(pool.idleBytes, 64 * 1024);
  });
});
