import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HISTORY_SPAN_MS, History } from '../../src/registry/dashboard-history.js';

const sample = (at: number, online: number, requests: [string, number][], relayed = 0) => ({
  at,
  online,
  requests: new Map(requests),
  relayed,
});

describe('dashboard history', () => {
  it('turns cumulative counters into rates per interval', () => {
    const history = new History(10_000);
    history.record(sample(1_000_000, 0, []));
    history.record(
      sample(
        1_010_000,
        3,
        [
          ['heartbeat', 20],
          ['register', 3],
        ],
        2,
      ),
    );
    history.record(
      sample(
        1_020_000,
        2,
        [
          ['heartbeat', 25],
          ['register', 3],
        ],
        3,
      ),
    );
    assert.equal(history.text(), JSON.stringify(history.toJSON()));
    assert.deepEqual(history.toJSON(), {
      interval_secs: 10,
      points: [
        { t: 1000, online: 0, requests_per_s: {}, handshakes_relayed: 0 },
        { t: 1010, online: 3, requests_per_s: { heartbeat: 2, register: 0.3 }, handshakes_relayed: 2 },
        { t: 1020, online: 2, requests_per_s: { heartbeat: 0.5 }, handshakes_relayed: 1 },
      ],
    });
    const before = history.text();
    history.record(sample(1_030_000, 1, [['heartbeat', 25]], 3));
    assert.notEqual(history.text(), before, 'a new sample is served at once');
  });

  it('keeps one hour, measuring the oldest point from the sample before it', () => {
    const interval = 60_000;
    const history = new History(interval);
    const total = HISTORY_SPAN_MS / interval + 5;
    for (let i = 0; i < total; i++) history.record(sample(i * interval, i, [['lookup', i * 60]], i));
    const { points } = history.toJSON();
    assert.equal(points.length, HISTORY_SPAN_MS / interval);
    assert.equal(points[0]?.online, 5);
    assert.deepEqual(points[0]?.requests_per_s, { lookup: 1 });
    assert.equal(points[0]?.handshakes_relayed, 1);
    assert.equal(points.at(-1)?.t, ((total - 1) * interval) / 1000);
  });
});
