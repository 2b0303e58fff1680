import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { performance } from 'node:perf_hooks';
import { DeadlineTimer } from '../../src/daemon/deadline-timer.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('DeadlineTimer', () => {
  it('fires at the earliest deadline, then at the one its handler still wants, and stops with none', async () => {
    const pending = new Set<number>();
    const fired: { at: number; wanted: number[] }[] = [];
    const timer = new DeadlineTimer((now) => {
      fired.push({ at: now, wanted: [...pending] });
      for (const d of pending) if (d <= now) pending.delete(d);
      return pending.size > 0 ? Math.min(...pending) : Infinity;
    });
    const t0 = performance.now();
    for (const ms of [120, 40, 80]) {
      pending.add(t0 + ms);
      timer.add(t0 + ms);
    }
    await sleep(200);
    assert.equal(pending.size, 0);
    assert.equal(timer.armed, false, 'nothing wanted: no timer left');
    assert.ok(fired.length >= 3 && fired.length <= 5, `${fired.length} firings for 3 deadlines`);
    assert.ok((fired[0]?.at ?? 0) - t0 >= 39, 'not before the first deadline (1 ms rounding aside)');
  });

  it('a later deadline leaves the armed timer alone; an earlier one moves it; stop disarms', async () => {
    let calls = 0;
    const timer = new DeadlineTimer(() => {
      calls++;
      return Infinity;
    });
    const t0 = performance.now();
    timer.add(t0 + 60);
    timer.add(t0 + 5_000);
    timer.add(t0 + 20);
    await sleep(40);
    assert.equal(calls, 1, 'fired once, at 20 ms');
    assert.equal(timer.armed, false, 'the handler wanted nothing more (the 60 ms and 5 s deadlines were its to keep)');
    timer.add(performance.now() + 30);
    assert.equal(timer.armed, true);
    timer.stop();
    await sleep(50);
    assert.equal(calls, 1, 'a stopped timer does not fire');
  });
});
