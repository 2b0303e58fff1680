import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { BoundedQueue } from '../../src/services/eventstream/queue.js';

describe('bounded subscriber queue', () => {
  it('refuses and counts items past the count limit', () => {
    const q = new BoundedQueue<number>({ maxBytes: 1000, maxCount: 3 });
    for (let i = 0; i < 5; i++) q.push(i, 10);
    assert.equal(q.length, 3);
    assert.equal(q.dropped, 2);
    assert.deepEqual([q.shift(), q.shift(), q.shift(), q.shift()], [0, 1, 2, undefined]);
    assert.equal(q.bytes, 0);
  });

  it('refuses items past the byte limit, but takes one oversize item into an empty queue', () => {
    const q = new BoundedQueue<string>({ maxBytes: 100, maxCount: 10 });
    assert.equal(q.push('a', 60), true);
    assert.equal(q.push('b', 60), false);
    assert.equal(q.push('c', 40), true);
    assert.equal(q.bytes, 100);
    q.shift();
    q.shift();
    assert.equal(q.push('huge', 500), true);
    assert.equal(q.push('d', 1), false);
    assert.equal(q.dropped, 2);
  });

  it('force() adds past the limits (for small notices)', () => {
    const q = new BoundedQueue<string>({ maxBytes: 10, maxCount: 1 });
    q.push('a', 10);
    q.force('n', 5);
    assert.equal(q.length, 2);
    assert.equal(q.bytes, 15);
    assert.equal(q.dropped, 0);
  });

  it('never exceeds its limits and keeps FIFO order (property)', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.integer({ min: 1, max: 300 }), fc.constant(-1)), { maxLength: 3000 }), (ops) => {
        const q = new BoundedQueue<number>({ maxBytes: 1000, maxCount: 20 });
        const model: { id: number; size: number }[] = [];
        let dropped = 0;
        ops.forEach((op, id) => {
          if (op === -1) {
            assert.equal(q.shift(), model.shift()?.id);
          } else {
            const bytes = model.reduce((s, m) => s + m.size, 0);
            const fits = model.length === 0 || (model.length < 20 && bytes + op <= 1000);
            assert.equal(q.push(id, op), fits);
            if (fits) model.push({ id, size: op });
            else dropped++;
          }
          assert.equal(q.length, model.length);
          assert.equal(
            q.bytes,
            model.reduce((s, m) => s + m.size, 0),
          );
          assert.ok(q.length <= 20);
          assert.ok(q.length <= 1 || q.bytes <= 1000);
        });
        assert.equal(q.dropped, dropped);
      }),
    );
  });
});
