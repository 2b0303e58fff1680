import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import { silentLogger } from '../../src/log.js';
import { formatAddr } from '../../src/protocol/address.js';
import { DataType } from '../../src/protocol/dataexchange.js';
import { OutboxRunner } from '../../src/services/dataexchange/delivery.js';
import { Outbox, type OutboxItem } from '../../src/services/dataexchange/outbox.js';
import { stackPair } from './stack-pair.js';

const A = { network: 0, node: 20 };
const B = { network: 0, node: 21 };

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The daemon's outbox, counting how often the runner lists it. */
class CountedOutbox extends Outbox {
  listings = 0;

  override list(): Promise<OutboxItem[]> {
    this.listings++;
    return super.list();
  }
}

/**
 * A runner on node A whose deliveries go to node B, where nothing listens on the data-exchange
 * port: every attempt is refused at once and the item waits for its backoff (1 s, then 2 s).
 */
async function runnerToB(): Promise<{
  runner: OutboxRunner;
  outbox: CountedOutbox;
  enqueue: (text: string) => Promise<OutboxItem>;
  close: () => Promise<void>;
}> {
  const home = await mkdtemp(join(tmpdir(), 'pilot-outbox-'));
  const { a, close } = stackPair(A, B);
  const outbox = new CountedOutbox(home);
  const runner = new OutboxRunner(outbox, a, Date.now, silentLogger());
  runner.start();
  // As pilotctl and the SDK add items: another Outbox on the same home.
  const writer = new Outbox(home);
  return {
    runner,
    outbox,
    enqueue: (text) => writer.enqueue({ target: formatAddr(B), type: DataType.Text, data: Buffer.from(text) }),
    close: async () => {
      await runner.close();
      close();
      await rm(home, { recursive: true, force: true });
    },
  };
}

async function until(what: string, limitMs: number, check: () => boolean): Promise<number> {
  const start = performance.now();
  while (!check()) {
    if (performance.now() - start > limitMs) assert.fail(`${what}: not within ${limitMs} ms`);
    await sleep(5);
  }
  return performance.now() - start;
}

describe('outbox runner', () => {
  let env: Awaited<ReturnType<typeof runnerToB>>;
  before(async () => {
    env = await runnerToB();
    await until('the first listing', 2000, () => env.outbox.listings >= 1);
  });
  after(() => env.close());

  it('leaves outbox/ alone while nothing in it changes or falls due', async () => {
    const before = env.outbox.listings;
    await sleep(1600);
    // Listing it every 500 ms, as before, would make three listings here.
    assert.equal(env.outbox.listings - before, 0);
  });

  it('attempts an item as soon as another process adds it, without waiting for a listing', async () => {
    // Each at a different moment: with a periodic listing (every 500 ms) some wait 300 ms or more.
    for (const [i, pause] of [137, 311, 53, 229, 401].entries()) {
      await sleep(pause);
      const attempts = env.runner.counters.attempts;
      await env.enqueue(`hello ${i}`);
      const waited = await until(`attempt of item ${i}`, 2000, () => env.runner.counters.attempts > attempts);
      assert.ok(waited < 250, `item ${i} attempted ${Math.round(waited)} ms after it was added`);
    }
  });

  it('retries a refused item when its backoff ends (nothing else would list outbox/ for 30 s)', async () => {
    const item = await env.enqueue('retry me');
    const attemptsSoFar = async (limitMs: number, atLeast: number): Promise<OutboxItem> => {
      const start = performance.now();
      for (;;) {
        const now = await env.outbox.read(item.id);
        if (now && now.attempts >= atLeast) return now;
        if (performance.now() - start > limitMs) assert.fail(`attempt ${atLeast} not recorded within ${limitMs} ms`);
        await sleep(10);
      }
    };
    const first = await attemptsSoFar(2000, 1);
    const dueIn = first.nextAttemptAt - Date.now();
    assert.ok(dueIn > 500, `the retry is due in ${dueIn} ms`);
    const second = await attemptsSoFar(dueIn + 2000, 2);
    assert.ok(second.nextAttemptAt > first.nextAttemptAt);
  });
});
