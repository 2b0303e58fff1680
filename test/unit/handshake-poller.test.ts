import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { HandshakePoller } from '../../src/daemon/handshake-poller.js';
import { silentLogger } from '../../src/log.js';
import { until } from '../wait.js';

function poller(state: { watching: boolean; awaiting: boolean }, pollMs = 0, fastForMs = 1000) {
  let polls = 0;
  const p = new HandshakePoller({
    poll: async () => {
      polls++;
      await sleep(pollMs);
    },
    watching: () => state.watching,
    awaiting: () => state.awaiting,
    log: silentLogger(),
    fastMs: 20,
    fastForMs,
  });
  return { p, polls: () => polls };
}

describe('HandshakePoller', () => {
  it('polls fast while a request awaits its answer and no push channel exists, then stops', async () => {
    const state = { watching: false, awaiting: true };
    // A long fast period: a loaded machine may delay the 20 ms timers, but not past it.
    const { p, polls } = poller(state, 0, 60_000);
    p.requestSent();
    await until('four fast polls', () => polls() >= 4, 5000, { show: polls });
    state.awaiting = false;
    await sleep(50);
    const settled = polls();
    await sleep(100);
    assert.equal(polls(), settled, 'no polls once the answer came');
    p.stop();
  });

  it('leaves the fast polling to the push channel when there is one, but a listing still polls once', async () => {
    const { p, polls } = poller({ watching: true, awaiting: true });
    p.requestSent();
    await sleep(100);
    assert.equal(polls(), 0, 'no fast polling next to a push channel');
    await p.refresh(100);
    assert.equal(polls(), 1, 'a push channel may be dead without knowing it');
    p.stop();
  });

  it('stops fast polling after the fast period', async () => {
    const { p, polls } = poller({ watching: false, awaiting: true });
    p.requestSent(Date.now() - 990);
    await sleep(150);
    assert.ok(polls() <= 1, `${polls()} polls after the period`);
    p.stop();
  });

  it('joins concurrent polls and bounds how long a refresh waits', async () => {
    const { p, polls } = poller({ watching: false, awaiting: false }, 300);
    const started = Date.now();
    void p.poll();
    await Promise.all([p.refresh(50), p.refresh(50)]);
    assert.ok(Date.now() - started < 250, 'refresh gave up waiting');
    assert.equal(polls(), 1, 'one poll for all three');
    p.stop();
  });
});
