import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setImmediate as tick } from 'node:timers/promises';
import { RequestScheduler, type Schedulable } from '../../src/registry/request-scheduler.js';

/** A connection with `pending` requests that each take `ms` of CPU; records the order served. */
class FakeConn implements Schedulable {
  constructor(
    readonly remoteIp: string,
    public pending: number,
    readonly log: string[],
    readonly name: string,
    readonly ms = 0,
  ) {}

  async runNext(): Promise<boolean> {
    const until = performance.now() + this.ms;
    while (performance.now() < until) {
      // busy: a synchronous handler (signature check, SQLite read)
    }
    this.log.push(this.name);
    this.pending--;
    return this.pending > 0;
  }
}

const settle = async (s: RequestScheduler, conns: FakeConn[]): Promise<void> => {
  while (conns.some((c) => c.pending > 0) || s.running > 0) await tick();
};

describe('RequestScheduler', () => {
  it('takes sources in turn, however many requests one of them has waiting', async () => {
    const s = new RequestScheduler();
    const log: string[] = [];
    const flood = [1, 2, 3, 4].map(() => new FakeConn('10.0.0.1', 50, log, 'F'));
    const a = new FakeConn('10.0.0.2', 3, log, 'A');
    const b = new FakeConn('10.0.0.3', 3, log, 'B');
    for (const c of flood) s.ready(c);
    s.ready(a);
    s.ready(b);
    await settle(s, [...flood, a, b]);
    assert.equal(log.length, 206);
    // Each of A's and B's requests waited behind one flood request at most.
    assert.deepEqual(log.slice(0, 9), ['F', 'A', 'B', 'F', 'A', 'B', 'F', 'A', 'B']);
  });

  it('lets a source that starts sending during a long backlog in within a slice', async () => {
    const s = new RequestScheduler();
    const log: string[] = [];
    const flood = new FakeConn('10.0.0.1', 400, log, 'F', 0.1);
    s.ready(flood);
    await tick();
    const late = new FakeConn('10.0.0.2', 1, log, 'L');
    s.ready(late);
    await settle(s, [flood, late]);
    const at = log.indexOf('L');
    assert.ok(at > 0 && at < 100, `the newcomer was served after ${at} of the flood's 400 requests`);
  });

  it('keeps a connection’s requests in order, one at a time', async () => {
    const s = new RequestScheduler();
    let inFlight = 0;
    let maxInFlight = 0;
    let pending = 20;
    const served: number[] = [];
    const conn: Schedulable = {
      remoteIp: '10.0.0.1',
      async runNext(): Promise<boolean> {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        await new Promise((r) => setTimeout(r, 1));
        served.push(20 - pending);
        pending--;
        inFlight--;
        return pending > 0;
      },
    };
    s.ready(conn);
    while (pending > 0 || s.running > 0) await new Promise((r) => setTimeout(r, 2));
    assert.equal(maxInFlight, 1);
    assert.deepEqual(
      served,
      Array.from({ length: 20 }, (_, i) => i),
    );
  });
});
