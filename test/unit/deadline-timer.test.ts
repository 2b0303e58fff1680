import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { performance } from 'node:perf_hooks';
import { DeadlineTimer } from '../../src/deadline-timer.js';
import { withDeadline } from '../../src/sdk/abort.js';

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

describe('withDeadline (every wait of the process on one timer)', () => {
  it('times out each wait at its own deadline, leaves the others alone, and tells the owner once', async () => {
    const never = new Promise<string>(() => undefined);
    let late: (v: string) => void = () => undefined;
    const lateAnswer = new Promise<string>((r) => {
      late = r;
    });
    const abandoned: string[] = [];
    const wait = (name: string, p: Promise<string>, timeoutMs: number) =>
      withDeadline(p, {
        timeoutMs,
        onTimeout: () => new Error(`${name} timed out`),
        onAbandon: () => abandoned.push(name),
      });
    const t0 = performance.now();
    const short = wait('short', never, 60).catch((e: Error) => ({ err: e.message, ms: performance.now() - t0 }));
    const long = wait('long', never, 200).catch((e: Error) => ({ err: e.message, ms: performance.now() - t0 }));
    const answered = wait('answered', lateAnswer, 100);
    setTimeout(() => late('ok'), 20);
    assert.equal(await answered, 'ok');
    const s = await short;
    assert.equal(typeof s === 'object' && s.err, 'short timed out');
    assert.ok(typeof s === 'object' && s.ms >= 59 && s.ms < 180, `short gave up after ${JSON.stringify(s)}`);
    const l = await long;
    assert.equal(typeof l === 'object' && l.err, 'long timed out');
    assert.ok(typeof l === 'object' && l.ms >= 199, `long gave up after ${JSON.stringify(l)}`);
    assert.deepEqual(abandoned, ['short', 'long'], 'the answered wait was never abandoned');
  });

  it('an aborted signal ends the wait at once and its deadline no longer fires', async () => {
    const ac = new AbortController();
    let timeouts = 0;
    const p = withDeadline(new Promise<never>(() => undefined), {
      signal: ac.signal,
      timeoutMs: 30,
      onTimeout: () => {
        timeouts++;
        return new Error('timeout');
      },
      onAbandon: () => undefined,
    });
    ac.abort();
    await assert.rejects(p, { name: 'AbortError' });
    await sleep(60);
    assert.equal(timeouts, 0);
  });
});
