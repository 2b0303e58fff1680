import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { PayloadStream, PayloadVerifier } from '../../src/transport/sim/payload.js';
import { Prng } from '../../src/transport/sim/prng.js';
import { Scheduler } from '../../src/transport/sim/scheduler.js';

describe('prng', () => {
  test('same seed gives the same sequence, another seed a different one', () => {
    const x = new Prng(42);
    const y = new Prng(42);
    const z = new Prng(43);
    const xs = Array.from({ length: 100 }, () => x.nextU32());
    assert.deepEqual(
      Array.from({ length: 100 }, () => y.nextU32()),
      xs,
    );
    assert.notDeepEqual(
      Array.from({ length: 100 }, () => z.nextU32()),
      xs,
    );
  });

  test('next, int and chance stay in range and are roughly uniform', () => {
    const rng = new Prng(7);
    const buckets = new Array<number>(10).fill(0);
    let hits = 0;
    const n = 100_000;
    for (let i = 0; i < n; i++) {
      const v = rng.next();
      assert.ok(v >= 0 && v < 1);
      const k = rng.int(10);
      assert.ok(Number.isInteger(k) && k >= 0 && k < 10);
      buckets[k] = (buckets[k] as number) + 1;
      if (rng.chance(0.25)) hits++;
    }
    for (const c of buckets) assert.ok(Math.abs(c - n / 10) < n / 100, `bucket count ${c}`);
    assert.ok(Math.abs(hits / n - 0.25) < 0.01, `chance(0.25) hit ${hits / n}`);
  });

  test('chance(0) does not consume randomness', () => {
    const x = new Prng(1);
    const y = new Prng(1);
    x.chance(0);
    assert.equal(x.nextU32(), y.nextU32());
  });

  test('normal and exponential have the requested moments', () => {
    const rng = new Prng(99);
    const n = 50_000;
    let sum = 0;
    let sq = 0;
    let expSum = 0;
    for (let i = 0; i < n; i++) {
      const v = rng.normal(5, 2);
      sum += v;
      sq += v * v;
      expSum += rng.exponential(3);
    }
    const mean = sum / n;
    const sd = Math.sqrt(sq / n - mean * mean);
    assert.ok(Math.abs(mean - 5) < 0.05, `normal mean ${mean}`);
    assert.ok(Math.abs(sd - 2) < 0.05, `normal sd ${sd}`);
    assert.ok(Math.abs(expSum / n - 3) < 0.1, `exponential mean ${expSum / n}`);
  });

  test('fork is stable and independent of the parent state', () => {
    const p = new Prng(5);
    const f1 = p.fork('x').nextU32();
    p.nextU32();
    assert.equal(p.fork('x').nextU32(), f1);
    assert.notEqual(p.fork('y').nextU32(), f1);
  });
});

describe('scheduler', () => {
  test('orders by time, then by insertion; clamps the past to now', () => {
    const s = new Scheduler<string>(10);
    s.schedule(30, 'c');
    s.schedule(20, 'a');
    s.schedule(20, 'b');
    s.schedule(5, 'now');
    s.schedule(30, 'd');
    const out: string[] = [];
    const times: number[] = [];
    for (let v = s.pop(); v !== undefined; v = s.pop()) {
      out.push(v);
      times.push(s.now);
    }
    assert.deepEqual(out, ['now', 'a', 'b', 'c', 'd']);
    assert.deepEqual(times, [10, 20, 20, 30, 30]);
  });

  test('keeps order over many random insertions', () => {
    const rng = new Prng(3);
    const s = new Scheduler<number>();
    const items = Array.from({ length: 5000 }, (_, i) => ({ at: rng.int(100), i }));
    for (const it of items) s.schedule(it.at, it.i);
    const expected = [...items].sort((x, y) => x.at - y.at || x.i - y.i).map((x) => x.i);
    const got: number[] = [];
    for (let v = s.pop(); v !== undefined; v = s.pop()) got.push(v);
    assert.deepEqual(got, expected);
  });

  test('refuses to jump over a pending event', () => {
    const s = new Scheduler<string>();
    s.schedule(5, 'x');
    assert.throws(() => s.advanceTo(10), RangeError);
  });
});

describe('payload', () => {
  test('streams are reproducible and verified chunk by chunk', () => {
    const s = new PayloadStream(9, 200_000);
    const v = new PayloadVerifier(9, 200_000);
    for (let c = s.nextChunk(777); c !== null; c = s.nextChunk(777)) v.push(c);
    assert.ok(v.complete());
    assert.equal(v.received, 200_000);
  });

  test('the verifier reports the first differing byte and excess data', () => {
    const data = new PayloadStream(9, 1000).nextChunk() as Uint8Array;
    const bad = Uint8Array.prototype.slice.call(data);
    bad[517] = ((bad[517] as number) ^ 1) & 0xff;
    const v = new PayloadVerifier(9, 1000);
    v.push(bad.subarray(0, 300));
    v.push(bad.subarray(300));
    assert.equal(v.firstMismatch, 517);
    assert.ok(!v.complete());

    const w = new PayloadVerifier(9, 999);
    w.push(data);
    assert.equal(w.firstMismatch, 999);
    assert.ok(!w.complete());
  });
});
