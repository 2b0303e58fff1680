import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ReplayWindow, type ReplayVerdict } from '../../src/crypto/index.js';

function accept(w: ReplayWindow, c: bigint): ReplayVerdict {
  const v = w.check(c);
  return v === 'ok' ? w.commit(c) : v;
}

describe('ReplayWindow (PROTOCOL.md §3.4)', () => {
  it('accepts the first counter and refuses its replay', () => {
    const w = new ReplayWindow();
    assert.equal(accept(w, 1n), 'ok');
    assert.equal(accept(w, 1n), 'replay');
    assert.equal(w.max, 1n);
  });

  it('never accepts counter 0', () => {
    const w = new ReplayWindow();
    assert.equal(w.check(0n), 'replay');
    accept(w, 300n);
    assert.equal(w.check(0n), 'too_old');
  });

  it('check does not commit', () => {
    const w = new ReplayWindow();
    assert.equal(w.check(5n), 'ok');
    assert.equal(w.check(5n), 'ok');
    assert.equal(w.max, 0n);
    assert.equal(w.commit(5n), 'ok');
    assert.equal(w.commit(5n), 'replay');
  });

  it('accepts reordered counters within 256 once each', () => {
    const w = new ReplayWindow();
    const order = [10n, 3n, 7n, 1n, 9n, 2n, 4n, 8n, 6n, 5n];
    for (const c of order) assert.equal(accept(w, c), 'ok', `first ${c}`);
    for (const c of order) assert.equal(accept(w, c), 'replay', `second ${c}`);
    assert.equal(accept(w, 300n), 'ok');
    assert.equal(accept(w, 45n), 'ok'); // 255 behind: still inside
    assert.equal(accept(w, 45n), 'replay');
    assert.equal(accept(w, 44n), 'too_old'); // 256 behind
  });

  it('refuses counters 256 or more behind the highest', () => {
    const w = new ReplayWindow();
    accept(w, 1000n);
    assert.equal(w.check(744n), 'too_old');
    assert.equal(w.check(745n), 'ok');
    assert.equal(w.check(1n), 'too_old');
  });

  it('a jump of 256 or more clears the whole map', () => {
    const w = new ReplayWindow();
    for (let c = 1n; c <= 256n; c++) accept(w, c);
    assert.equal(accept(w, 512n), 'ok');
    // 257..511 share slots with 1..255 seen before the jump; all must be fresh now.
    for (let c = 257n; c < 512n; c++) assert.equal(accept(w, c), 'ok', `counter ${c}`);
    assert.equal(w.check(256n), 'too_old');
  });

  it('sliding clears only the slots passed over', () => {
    const w = new ReplayWindow();
    accept(w, 1n);
    accept(w, 2n);
    assert.equal(accept(w, 257n), 'ok'); // slot of 1 reused
    assert.equal(w.check(1n), 'too_old');
    assert.equal(w.check(2n), 'replay'); // 255 behind, still marked
  });

  it('handles the top of the u64 range', () => {
    const w = new ReplayWindow();
    const max = 0xffff_ffff_ffff_ffffn;
    assert.equal(accept(w, max), 'ok');
    assert.equal(accept(w, max), 'replay');
    assert.equal(accept(w, max - 1n), 'ok');
    assert.throws(() => w.check(max + 1n), RangeError);
    assert.throws(() => w.check(-1n), RangeError);
  });

  it('matches a set-based model', () => {
    fc.assert(
      fc.property(fc.array(fc.bigInt({ min: 1n, max: 700n }), { maxLength: 300 }), (counters) => {
        const w = new ReplayWindow();
        const seen = new Set<bigint>();
        let max = 0n;
        for (const c of counters) {
          const expected: ReplayVerdict = c > max ? 'ok' : max - c >= 256n ? 'too_old' : seen.has(c) ? 'replay' : 'ok';
          assert.equal(accept(w, c), expected);
          if (expected === 'ok') {
            seen.add(c);
            if (c > max) max = c;
          }
        }
      }),
      { numRuns: 200 },
    );
  });
});
