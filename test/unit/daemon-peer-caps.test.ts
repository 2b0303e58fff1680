import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeCaps, encodeCaps } from '../../src/protocol/caps.js';
import { LOCAL_MAX_SEGMENT, PeerCaps } from '../../src/daemon/peer-caps.js';

interface Harness {
  caps: PeerCaps;
  sent: { node: number; request: boolean; maxSegment: number; batch: boolean; synData: boolean }[];
  applied: { node: number; mss: number }[];
  batching: Map<number, boolean>;
  synData: Map<number, boolean>;
  loopback: Set<number>;
  clock: { t: number };
  /** Timers the caps table armed and has not yet had run. */
  timers: { fn: () => void; ms: number }[];
}

function harness(): Harness {
  const sent: Harness['sent'] = [];
  const applied: Harness['applied'] = [];
  const batching = new Map<number, boolean>();
  const synData = new Map<number, boolean>();
  const loopback = new Set<number>();
  const clock = { t: 1_000 };
  const timers: Harness['timers'] = [];
  const caps = new PeerCaps({
    send: (node, payload) => {
      const d = decodeCaps(payload);
      assert.ok(d.ok);
      sent.push({ node, ...d.value });
    },
    pathAllowsLarge: (node) => loopback.has(node),
    apply: (node, mss) => applied.push({ node, mss }),
    batching: (node, on) => batching.set(node, on),
    synData: (node, on) => synData.set(node, on),
    now: () => clock.t,
    later: (fn, ms) => {
      const timer = { fn, ms };
      timers.push(timer);
      return () => timers.splice(timers.indexOf(timer), 1);
    },
  });
  return { caps, sent, applied, batching, synData, loopback, clock, timers };
}

describe('capability advert (Control packet to port 1)', () => {
  it('round-trips and refuses short, foreign, future-version and too-small adverts', () => {
    const bytes = encodeCaps({ request: true, maxSegment: 61_440, batch: true, synData: true });
    assert.deepEqual(Buffer.from(bytes).toString('hex'), '50434150' + '01' + '07' + 'f000');
    assert.deepEqual(decodeCaps(bytes), {
      ok: true,
      value: { request: true, maxSegment: 61_440, batch: true, synData: true },
    });
    const plain = encodeCaps({ request: false, maxSegment: 4096, batch: false, synData: false });
    assert.deepEqual(decodeCaps(plain), {
      ok: true,
      value: { request: false, maxSegment: 4096, batch: false, synData: false },
    });
    const unknownFlags = Buffer.from(plain);
    unknownFlags[5] = 0xf8;
    assert.deepEqual(
      decodeCaps(unknownFlags),
      { ok: true, value: { request: false, maxSegment: 4096, batch: false, synData: false } },
      'unknown flag bits are ignored',
    );
    assert.equal(decodeCaps(bytes.subarray(0, 7)).ok, false);
    assert.equal(decodeCaps(Buffer.from('ping-123')).ok, false);
    const v2 = Buffer.from(bytes);
    v2[4] = 2;
    assert.equal(decodeCaps(v2).ok, false);
    const small = Buffer.from(bytes);
    small.writeUInt16BE(1024, 6);
    assert.equal(decodeCaps(small).ok, false);
    assert.throws(() => encodeCaps({ request: false, maxSegment: 70_000, batch: false, synData: false }), RangeError);
  });
});

describe('PeerCaps', () => {
  it('asks a peer once per interval, and never again once it answered', () => {
    const h = harness();
    h.caps.observe(7);
    h.caps.observe(7);
    assert.deepEqual(h.sent, [{ node: 7, request: true, maxSegment: LOCAL_MAX_SEGMENT, batch: true, synData: true }]);
    h.clock.t += 5_000;
    h.caps.observe(7);
    assert.equal(h.sent.length, 2, 'a Go peer never answers: ask again after the interval');
    assert.equal(h.batching.get(7), undefined, 'no answer, no batching');
    h.caps.onAdvert(7, encodeCaps({ request: false, maxSegment: 61_440, batch: false, synData: false }), true);
    assert.equal(h.batching.get(7), false, 'an advert without the flag (an older pilot-ts) keeps plain PILS frames');
    assert.equal(h.synData.get(7), false, 'and plain SYNs');
    h.clock.t += 60_000;
    h.caps.observe(7);
    assert.equal(h.sent.length, 2);
  });

  it('asks again at once when the node becomes trusted (its gate may have dropped the first question)', () => {
    const h = harness();
    h.caps.observe(7);
    h.caps.observe(7);
    assert.equal(h.sent.length, 1);
    h.caps.retry(7);
    h.caps.observe(7);
    assert.equal(h.sent.length, 2, 'asked again without waiting for the interval');
    h.caps.onAdvert(7, encodeCaps({ request: false, maxSegment: 61_440, batch: true, synData: true }), true);
    h.caps.retry(7);
    h.caps.observe(7);
    assert.equal(h.sent.length, 2, 'a node whose advert is known is not asked again');
  });

  it('tells an untrusted node nothing, but takes its answer to a question of ours', () => {
    const h = harness();
    h.caps.onAdvert(5, encodeCaps({ request: true, maxSegment: 61_440, batch: true, synData: true }), false);
    assert.deepEqual(h.sent, [], 'a question from an untrusted node is not answered');
    assert.equal(h.caps.advertisedBy(5), undefined, 'nor taken for its advert');
    h.caps.onAdvert(5, encodeCaps({ request: false, maxSegment: 61_440, batch: true, synData: true }), false);
    assert.equal(h.caps.advertisedBy(5), undefined, 'an answer nobody asked for is dropped');
    h.caps.observe(5);
    h.clock.t += 4_000;
    // Our question crossed its trusting us, and the answer came back just before we trusted it.
    h.caps.onAdvert(5, encodeCaps({ request: false, maxSegment: 61_440, batch: true, synData: true }), false);
    assert.equal(h.caps.advertisedBy(5), 61_440);
    assert.equal(h.batching.get(5), true);
    h.caps.observe(6);
    h.clock.t += 5_000;
    h.caps.onAdvert(6, encodeCaps({ request: false, maxSegment: 61_440, batch: true, synData: true }), false);
    assert.equal(h.caps.advertisedBy(6), undefined, 'an answer after the question interval is dropped');
  });

  it('answers a question and uses large segments only on a loopback path', () => {
    const h = harness();
    h.caps.onAdvert(3, encodeCaps({ request: true, maxSegment: 61_440, batch: true, synData: true }), true);
    assert.deepEqual(h.sent, [{ node: 3, request: false, maxSegment: LOCAL_MAX_SEGMENT, batch: true, synData: true }]);
    h.caps.onAdvert(3, encodeCaps({ request: true, maxSegment: 61_440, batch: true, synData: true }), true);
    assert.equal(h.sent.length, 1, 'a repeated question within a second is not answered at once');
    h.caps.onAdvert(3, encodeCaps({ request: true, maxSegment: 61_440, batch: true, synData: true }), true);
    assert.equal(h.timers.length, 1, 'but owed: one timer for any number of repeats');
    h.clock.t += 1_000;
    h.timers.shift()?.fn();
    assert.deepEqual(
      h.sent.at(-1),
      { node: 3, request: false, maxSegment: LOCAL_MAX_SEGMENT, batch: true, synData: true },
      'answered once the second is over (the first answer may have been lost)',
    );
    assert.equal(h.sent.length, 2);
    assert.equal(h.timers.length, 0);
    assert.deepEqual(
      h.applied.at(-1),
      { node: 3, mss: 4096 },
      'not loopback: the default size (but known to be pilot-ts: a zero window is honoured)',
    );
    assert.equal(h.batching.get(3), true, 'batching does not depend on the path');
    h.loopback.add(3);
    h.caps.refresh(3);
    assert.deepEqual(h.applied.at(-1), { node: 3, mss: 61_440 });
    h.loopback.delete(3);
    h.caps.refresh(3);
    assert.deepEqual(h.applied.at(-1), { node: 3, mss: 4096 }, 'switched to the relay: back to 4096');
  });

  it('takes the smaller of both sides, ignores garbage, and forgets a restarted peer', () => {
    const h = harness();
    h.loopback.add(9);
    h.caps.onAdvert(9, encodeCaps({ request: false, maxSegment: 8192, batch: true, synData: true }), true);
    assert.deepEqual(h.applied, [{ node: 9, mss: 8192 }]);
    assert.equal(h.batching.get(9), true, 'the advert says it reads PILM frames');
    assert.equal(h.synData.get(9), true, 'and takes data in a SYN');
    h.caps.onAdvert(9, Buffer.from('garbage!'), true);
    assert.equal(h.applied.length, 1);
    h.caps.onAdvert(9, encodeCaps({ request: true, maxSegment: 8192, batch: true, synData: true }), true);
    h.caps.onAdvert(9, encodeCaps({ request: true, maxSegment: 8192, batch: true, synData: true }), true);
    assert.equal(h.timers.length, 1);
    const answers = h.sent.length;
    h.caps.forget(9);
    h.clock.t += 1_000;
    h.timers.shift()?.fn();
    assert.equal(h.sent.length, answers, 'a forgotten peer is owed nothing');
    assert.deepEqual(
      h.applied.at(-1),
      { node: 9, mss: 0 },
      'no longer known to be pilot-ts (it may have restarted as the reference)',
    );
    assert.equal(h.batching.get(9), false, 'a restarted peer may not read them any more');
    assert.equal(h.synData.get(9), false, 'nor take data in a SYN');
    assert.equal(h.caps.advertisedBy(9), undefined);
    h.caps.observe(9);
    assert.equal(h.sent.at(-1)?.request, true, 'asked again at once');
  });
});
