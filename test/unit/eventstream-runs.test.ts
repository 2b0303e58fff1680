import assert from 'node:assert/strict';
import { Duplex } from 'node:stream';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  EVENT_RUN_MAX,
  EventDecoder,
  EventRunReader,
  encodeEvent,
  type StreamEvent,
} from '../../src/protocol/eventstream.js';
import { Broker } from '../../src/services/eventstream/broker.js';
import { HOLD_MAX_MS } from '../../src/services/eventstream/client.js';

function decodeAll(bytes: Uint8Array): StreamEvent[] {
  const out: StreamEvent[] = [];
  for (const r of new EventDecoder().push(bytes)) {
    assert.ok(r.ok);
    out.push(r.value);
  }
  return out;
}

describe('event runs', () => {
  it('give back every event as it came, in runs of one topic, however the bytes are split (property)', () => {
    const event = fc.record({
      topic: fc.constantFrom('a', 'b', 'metrics.cpu', 'é'),
      payload: fc.oneof(fc.constant(new Uint8Array(0)), fc.uint8Array({ minLength: 1, maxLength: 40 })),
    });
    fc.assert(
      fc.property(fc.array(event, { maxLength: 600 }), fc.array(fc.nat(300), { maxLength: 40 }), (events, cuts) => {
        const wire = Buffer.concat(events.map(encodeEvent));
        const reader = new EventRunReader();
        const frames: Uint8Array[] = [];
        const decoded: StreamEvent[] = [];
        let at = 0;
        for (const cut of [...cuts, wire.length]) {
          const end = Math.min(wire.length, at + cut);
          for (const r of reader.push(wire.subarray(at, end))) {
            assert.ok(r.ok);
            const run = r.value;
            assert.ok(run.count >= 1 && run.count <= EVENT_RUN_MAX);
            const inRun = decodeAll(run.frames);
            assert.equal(inRun.length, run.count);
            assert.ok(inRun.every((e) => e.topic === run.topic));
            assert.equal(
              run.payloadBytes,
              inRun.reduce((n, e) => n + e.payload.length, 0),
            );
            if (inRun.some((e) => e.payload.length === 0)) assert.equal(run.count, 1, 'an empty event is a run alone');
            frames.push(run.frames);
            decoded.push(...inRun);
          }
          at = end;
        }
        assert.equal(reader.buffered, 0);
        assert.deepEqual(Buffer.concat(frames), wire);
        assert.deepEqual(
          decoded.map((e) => [e.topic, Buffer.from(e.payload).toString('hex')]),
          events.map((e) => [e.topic, Buffer.from(e.payload).toString('hex')]),
        );
      }),
    );
  });

  it('fails on an oversize topic length as soon as it is in, after the events before it', () => {
    const good = encodeEvent({ topic: 't', payload: Buffer.from('x') });
    const results = new EventRunReader().push(Buffer.concat([good, Buffer.from([0x04, 0x01])]));
    assert.equal(results.length, 2);
    assert.ok(results[0]?.ok && results[0].value.count === 1);
    assert.ok(results[1] && !results[1].ok && results[1].error.code === 'too_long');
  });
});

/**
 * The broker's end of a subscriber that takes each write `perWrite()` ms after it is made (0: at
 * once, as a transport with room does), or never.
 */
function subscriber(broker: Broker, name: string, topic: string, perWrite: () => number | 'frozen') {
  const decoder = new EventDecoder();
  const received: string[] = [];
  const conn = new Duplex({
    highWaterMark: 1024,
    read: () => undefined,
    write: (chunk: Buffer, _enc, cb) => {
      for (const r of decoder.push(chunk)) if (r.ok && r.value.topic === topic) received.push(r.value.topic);
      const wait = perWrite();
      if (wait === 0) cb();
      else if (wait !== 'frozen') setTimeout(cb, wait);
    },
  });
  broker.accept(conn, name);
  conn.push(encodeEvent({ topic, payload: new Uint8Array(0) }));
  return { received };
}

async function publishInSlices(pub: Duplex, total: number, perSlice: number, size = 40): Promise<void> {
  const frame = Buffer.from(encodeEvent({ topic: 't', payload: Buffer.alloc(size, 1) }));
  for (let sent = 0; sent < total; sent += perSlice) {
    pub.push(Buffer.concat(Array.from({ length: Math.min(perSlice, total - sent) }, () => frame)));
    await new Promise((r) => setImmediate(r));
  }
}

function publisher(broker: Broker): Duplex {
  const pub = new Duplex({ read: () => undefined, write: (_c, _e, cb) => cb() });
  broker.accept(pub, 'pub');
  pub.push(encodeEvent({ topic: 'p', payload: new Uint8Array(0) }));
  return pub;
}

describe('event stream backpressure', () => {
  it('holds a publisher back while a subscriber that keeps reading catches up: nothing is lost', async () => {
    const broker = new Broker({ limits: { maxBytes: 64 * 1024, maxCount: 100 } });
    let writes = 0;
    const sub = subscriber(broker, 'sub', 't', () => (++writes === 1 ? 0 : 2));
    const pub = publisher(broker);
    let paused = false;
    const probe = setInterval(() => (paused ||= pub.isPaused()), 0);
    const total = 5000;
    await publishInSlices(pub, total, 25);
    const deadline = Date.now() + 20_000;
    while (sub.received.length < total && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    clearInterval(probe);
    assert.equal(sub.received.length, total);
    assert.equal(broker.stats().dropped, 0);
    assert.ok(paused, 'the publisher was held back at some point');
  });

  it('holds a publisher back for as long as a slower subscriber keeps reading, past HOLD_MAX_MS: nothing is lost', async () => {
    const broker = new Broker({ limits: { maxBytes: 4 * 1024 * 1024, maxCount: 120 } });
    // Events too large to be joined: one per write, one write per 40 ms after the first. Going
    // from half the queue (60) down to a quarter (30) then takes one hold of about 1.2 s.
    let writes = 0;
    const sub = subscriber(broker, 'slow', 't', () => (++writes === 1 ? 0 : 40));
    const pub = publisher(broker);
    let pausedSince = 0;
    let longestPause = 0;
    const probe = setInterval(() => {
      if (!pub.isPaused()) pausedSince = 0;
      else if (pausedSince === 0) pausedSince = Date.now();
      else longestPause = Math.max(longestPause, Date.now() - pausedSince);
    }, 5);
    const total = 75;
    await publishInSlices(pub, total, 1, 4100);
    const deadline = Date.now() + 20_000;
    while (sub.received.length < total && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    clearInterval(probe);
    assert.equal(sub.received.length, total);
    assert.equal(broker.stats().dropped, 0);
    assert.ok(longestPause > HOLD_MAX_MS, `one hold lasted ${longestPause} ms`);
  });

  it('stops holding for a subscriber that stopped reading: after HOLD_MAX_MS it loses events alone', async () => {
    const broker = new Broker({ limits: { maxBytes: 64 * 1024, maxCount: 100 } });
    let writes = 0;
    // Reads its first writes, then never again.
    subscriber(broker, 'stuck', 't', () => (++writes <= 2 ? 0 : 'frozen'));
    const fast = subscriber(broker, 'fast', 't', () => 0);
    const pub = publisher(broker);
    const total = 3000;
    const started = Date.now();
    await publishInSlices(pub, total, 25);
    const deadline = Date.now() + 10_000;
    while (fast.received.length < total && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    assert.equal(fast.received.length, total);
    assert.ok(Date.now() - started < HOLD_MAX_MS + 5000, 'held back once, for a bounded time');
    const clients = broker.stats().clients as { remote: string; dropped: number }[];
    assert.ok((clients.find((c) => c.remote === 'stuck')?.dropped ?? 0) > 0);
    assert.equal(clients.find((c) => c.remote === 'fast')?.dropped, 0);
    assert.equal(pub.isPaused(), false);
  });
});
