import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DeadlineHeap } from '../../src/transport/deadline-heap.js';

describe('DeadlineHeap', () => {
  it('gives the earliest current deadline as items move theirs', () => {
    const h = new DeadlineHeap<string>();
    h.update('a', 50);
    h.update('b', 20);
    h.update('c', 30);
    assert.equal(h.peek(), 20);
    h.update('b', 40);
    assert.equal(h.peek(), 30);
    h.update('c', undefined);
    assert.equal(h.peek(), 40);
    h.update('a', 10);
    assert.equal(h.peek(), 10);
    assert.equal(h.size, 2);
  });

  it('takes the due items once each, earliest first, and keeps the rest', () => {
    const h = new DeadlineHeap<string>();
    h.update('a', 5);
    h.update('b', 30);
    h.update('a', 7);
    h.update('a', 5);
    h.update('c', 6);
    assert.deepEqual(h.takeDue(10), ['a', 'c']);
    assert.equal(h.peek(), 30);
    assert.deepEqual(h.takeDue(29), []);
    h.delete('b');
    assert.equal(h.peek(), undefined);
    assert.equal(h.size, 0);
  });

  it('matches a linear scan under random updates, one entry per item', () => {
    const h = new DeadlineHeap<number>();
    const truth = new Map<number, number>();
    let seed = 7;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let step = 0; step < 20_000; step++) {
      const item = rnd(50);
      const at = rnd(10) === 0 ? undefined : rnd(100_000);
      h.update(item, at);
      if (at === undefined) truth.delete(item);
      else truth.set(item, at);
      const min = truth.size === 0 ? undefined : Math.min(...truth.values());
      assert.equal(h.peek(), min);
      assert.equal(h.size, truth.size);
    }
    const now = 50_000;
    const due = h.takeDue(now).sort((x, y) => x - y);
    const expected = [...truth]
      .filter(([, at]) => at <= now)
      .map(([item]) => item)
      .sort((x, y) => x - y);
    assert.deepEqual(due, expected);
    assert.equal(h.size, truth.size - expected.length);
  });
});
