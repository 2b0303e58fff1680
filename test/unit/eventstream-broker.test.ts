import assert from 'node:assert/strict';
import { Duplex } from 'node:stream';
import { describe, it } from 'node:test';
import { EVENT_MAX_PAYLOAD, EventDecoder, encodeEvent, type StreamEvent } from '../../src/protocol/eventstream.js';
import { PilotError } from '../../src/errors.js';
import { subscribe } from '../../src/sdk/events.js';
import { Broker, type BrokerOptions } from '../../src/services/eventstream/broker.js';
import { DROPPED_TOPIC, ERROR_TOPIC } from '../../src/protocol/event-topics.js';

/** A client end and the broker's end of one in-memory connection; `hold` keeps broker writes unacknowledged. */
class Link {
  readonly received: StreamEvent[] = [];
  private readonly decoder = new EventDecoder();
  private held: (() => void)[] = [];
  holding = false;
  readonly server: Duplex;

  constructor(broker: Broker, name: string, hwm = 1024) {
    this.server = new Duplex({
      highWaterMark: hwm,
      read: () => undefined,
      write: (chunk: Buffer, _enc, cb) => {
        const deliver = (): void => {
          for (const r of this.decoder.push(chunk)) if (r.ok) this.received.push(r.value);
          cb();
        };
        if (this.holding) this.held.push(deliver);
        else deliver();
      },
    });
    broker.accept(this.server, name);
  }

  send(topic: string, payload: string | Uint8Array = ''): void {
    this.server.push(
      Buffer.from(encodeEvent({ topic, payload: typeof payload === 'string' ? Buffer.from(payload) : payload })),
    );
  }

  raw(bytes: Uint8Array): void {
    this.server.push(Buffer.from(bytes));
  }

  release(): void {
    this.holding = false;
    const held = this.held;
    this.held = [];
    for (const f of held) f();
  }

  topics(): string[] {
    return this.received.map((e) => e.topic);
  }
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

function recorder(): { opts: BrokerOptions; log: string[] } {
  const log: string[] = [];
  return {
    log,
    opts: {
      onSubscribed: (remote, topic) => log.push(`sub ${remote} ${topic}`),
      onUnsubscribed: (remote, topic) => log.push(`unsub ${remote} ${topic}`),
      onPublished: (remote, topic, size) => log.push(`pub ${remote} ${topic} ${size}`),
    },
  };
}

describe('event stream broker', () => {
  it('follows the reference: first event subscribes, later ones publish, never back to the sender, "*" gets all', async () => {
    const { opts, log } = recorder();
    const broker = new Broker(opts);
    const s1 = new Link(broker, 's1');
    const all = new Link(broker, 'all');
    const pub = new Link(broker, 'pub');
    s1.send('status');
    all.send('*');
    pub.send('status');
    await tick();
    pub.send('status', 'online');
    pub.send('other', 'x');
    pub.send('*', 'star');
    s1.send('status', 'from-s1');
    await tick();
    assert.deepEqual(
      s1.received.map((e) => Buffer.from(e.payload).toString()),
      ['online'],
    );
    assert.deepEqual(all.topics(), ['status', 'other', '*', 'status']);
    assert.deepEqual(
      pub.received.map((e) => Buffer.from(e.payload).toString()),
      ['from-s1'],
    );
    assert.ok(log.includes('sub s1 status') && log.includes('pub pub status 6'));
    assert.equal(broker.stats().subscribers, 3);
  });

  it('matches prefix wildcards, adds subscriptions from later empty events, and delivers once per connection', async () => {
    const broker = new Broker();
    const sub = new Link(broker, 'sub');
    const pub = new Link(broker, 'pub');
    sub.send('metrics.*');
    sub.send('alerts');
    sub.send('metrics.cpu');
    pub.send('x');
    await tick();
    for (const t of ['metrics.cpu', 'metrics.mem.free', 'metrics', 'alerts', 'alerts.x', 'other']) pub.send(t, 'v');
    await tick();
    assert.deepEqual(sub.topics(), ['metrics.cpu', 'metrics.mem.free', 'alerts']);
    assert.deepEqual(broker.stats().subscriptions, 4);
  });

  it('publishes an empty event on a topic the connection already subscribed to', async () => {
    const broker = new Broker();
    const sub = new Link(broker, 'sub');
    const pub = new Link(broker, 'pub');
    sub.send('t');
    pub.send('t');
    await tick();
    pub.send('t', '');
    await tick();
    assert.deepEqual(sub.topics(), ['t']);
    assert.equal(sub.received[0]?.payload.length, 0);
  });

  it('refuses publishes to reserved topics', async () => {
    const broker = new Broker();
    const sub = new Link(broker, 'sub');
    const pub = new Link(broker, 'pub');
    sub.send('*');
    pub.send('x');
    await tick();
    pub.send(DROPPED_TOPIC, '{"dropped":99}');
    await tick();
    assert.deepEqual(sub.received, []);
    assert.equal(broker.stats().reserved_refused, 1);
  });

  it('closes a connection that announces an oversize topic or payload, before buffering it, saying why first', async () => {
    const broker = new Broker();
    const a = new Link(broker, 'a');
    a.raw(Buffer.from([0x04, 0x01]));
    await tick();
    assert.equal(a.server.writableEnded, true);
    assert.deepEqual(
      a.received.map((e) => [e.topic, JSON.parse(Buffer.from(e.payload).toString()) as unknown]),
      [[ERROR_TOPIC, { error: 'event topic length 1025 exceeds 1024' }]],
    );
    const b = new Link(broker, 'b');
    b.send('t');
    const header = Buffer.alloc(7);
    header.writeUInt16BE(1, 0);
    header[2] = 0x78;
    header.writeUInt32BE(EVENT_MAX_PAYLOAD + 1, 3);
    b.raw(header);
    await tick();
    assert.equal(b.server.writableEnded, true);
    assert.deepEqual(b.topics(), [ERROR_TOPIC]);
    assert.match(
      Buffer.from(b.received[0]?.payload ?? []).toString(),
      /event payload length 16777217 exceeds 16777216/,
    );
    // Nothing more is read from a refused connection.
    b.send('t2');
    await tick();
    assert.equal(broker.stats().conns_refused, 2);
    assert.equal(broker.stats().subscribers, 0);
    assert.equal(broker.stats().connections, 0);
  });

  it('a subscriber that does not read loses events alone, is told how many, and never delays the others', async () => {
    const broker = new Broker({ limits: { maxBytes: 64 * 1024, maxCount: 100 } });
    const slow = new Link(broker, 'slow');
    const slowQuiet = new Link(broker, 'quiet');
    const fast = new Link(broker, 'fast');
    const pub = new Link(broker, 'pub');
    slow.send('*');
    slowQuiet.send('t');
    fast.send('t');
    pub.send('p');
    await tick();
    slow.holding = true;
    slowQuiet.holding = true;
    for (let i = 0; i < 1000; i++) pub.send('t', `event-${i}`);
    await tick();
    assert.equal(fast.received.length, 1000, 'the fast subscriber got every event at once');
    const stats = broker.stats();
    assert.ok((stats.dropped as number) > 1500, `dropped ${String(stats.dropped)}`);
    const clients = stats.clients as { remote: string; dropped: number }[];
    assert.equal(clients.find((c) => c.remote === 'fast')?.dropped, 0);
    const slowDropped = clients.find((c) => c.remote === 'slow')?.dropped ?? 0;
    assert.ok(slowDropped >= 700, `slow dropped ${slowDropped}`);
    slow.release();
    slowQuiet.release();
    await tick();
    const notice = slow.received.find((e) => e.topic === DROPPED_TOPIC);
    assert.deepEqual(JSON.parse(Buffer.from(notice?.payload ?? []).toString()), { dropped: slowDropped });
    assert.equal(slow.received.length, 1000 - slowDropped + 1);
    const payloads = slow.received
      .filter((e) => e.topic === 't')
      .map((e) => Number(Buffer.from(e.payload).toString().slice(6)));
    assert.deepEqual(
      payloads,
      [...payloads].sort((x, y) => x - y),
      'order is kept',
    );
    assert.equal(
      slowQuiet.received.some((e) => e.topic === DROPPED_TOPIC),
      false,
      'no notice without asking for it',
    );
    pub.send('t', 'after');
    await tick();
    assert.equal(slow.received.at(-1)?.topic, 't');
  });

  it('places the notice before the first event queued after the drops', async () => {
    const broker = new Broker({ limits: { maxBytes: 1 << 20, maxCount: 3 } });
    const slow = new Link(broker, 'slow', 1);
    const pub = new Link(broker, 'pub');
    slow.send('t');
    slow.send(DROPPED_TOPIC);
    pub.send('p');
    await tick();
    slow.holding = true;
    for (let i = 0; i < 10; i++) pub.send('t', String(i));
    await tick();
    slow.release();
    await tick();
    pub.send('t', 'next');
    await tick();
    const seq = slow.received.map((e) => `${e.topic}=${Buffer.from(e.payload).toString()}`);
    assert.equal(seq.filter((s) => s.startsWith(DROPPED_TOPIC)).length, 1);
    const i = seq.findIndex((s) => s.startsWith(DROPPED_TOPIC));
    assert.ok(i > 0 && i < seq.length);
  });

  it('forgets a connection when it closes and reports each subscription as ended', async () => {
    const { opts, log } = recorder();
    const broker = new Broker(opts);
    const a = new Link(broker, 'a');
    a.send('x');
    a.send('y.*');
    await tick();
    assert.equal(broker.stats().subscribers, 1);
    a.server.destroy();
    await tick();
    assert.equal(broker.stats().subscribers, 0);
    assert.equal(broker.stats().connections, 0);
    assert.deepEqual(
      log.filter((l) => l.startsWith('unsub')),
      ['unsub a x', 'unsub a y.*'],
    );
  });

  it('limits subscriptions per connection, and tells the connection it closes why, whatever it subscribed to', async () => {
    const broker = new Broker({ maxTopicsPerConn: 2 });
    const a = new Link(broker, 'a');
    const pub = new Link(broker, 'pub');
    pub.send('p');
    a.send('1');
    await tick();
    pub.send('1', 'queued for a');
    a.send('2');
    a.send('3');
    await tick();
    assert.equal(a.server.writableEnded, true);
    // The event queued for a in the same turn is discarded: the reason is the last (and only) word.
    assert.deepEqual(a.topics(), [ERROR_TOPIC]);
    assert.deepEqual(JSON.parse(Buffer.from(a.received[0]?.payload ?? []).toString()), {
      error: 'more than 2 subscriptions on one connection',
    });
    assert.equal(broker.stats().delivered, 1, 'the event was queued for a before the refusal');
    assert.equal(broker.stats().subscribers, 1);
  });
});

/** Two connected in-memory stream ends. */
function streamPair(): [Duplex, Duplex] {
  const ends: Duplex[] = [];
  const make = (other: () => Duplex): Duplex =>
    new Duplex({
      read: () => undefined,
      write: (chunk: Buffer, _enc, cb) => {
        other().push(chunk);
        cb();
      },
      final: (cb) => {
        other().push(null);
        cb();
      },
    });
  ends.push(
    make(() => ends[1] as Duplex),
    make(() => ends[0] as Duplex),
  );
  return [ends[0] as Duplex, ends[1] as Duplex];
}

describe('SDK subscription refused by the broker', () => {
  it('fails with the reason the broker gave', async () => {
    const broker = new Broker({ maxTopicsPerConn: 2 });
    const [client, server] = streamPair();
    broker.accept(server, 'sdk');
    // A dialer sends the dial's first bytes (the subscriptions) as the stream's first bytes.
    const dial = async (_addr: unknown, _port: number, options?: { data?: Uint8Array }) => {
      if (options?.data) client.write(options.data);
      return client;
    };
    const sub = await subscribe({ dial }, '0:0000.0000.0001', ['a', 'b', 'c'], {
      dropNotices: false,
    });
    await assert.rejects(
      sub.next(),
      (err: unknown) =>
        err instanceof PilotError && err.code === 'refused' && /more than 2 subscriptions/.test(err.message),
    );
  });
});

describe('event decoder limits', () => {
  it('fails on an oversize payload length as soon as the header is in, holding no payload', () => {
    const d = new EventDecoder();
    const header = Buffer.alloc(9);
    header.writeUInt16BE(3, 0);
    header.write('abc', 2);
    header.writeUInt32BE(0xffffffff, 5);
    const out = d.push(header);
    assert.equal(out.length, 1);
    assert.equal(out[0]?.ok, false);
    assert.equal(d.buffered, 0);
    assert.equal(d.push(Buffer.alloc(10)).at(-1)?.ok, false, 'stays failed');
  });

  it('accepts events split at every byte and topics of exactly 1024 bytes', () => {
    const ev = encodeEvent({ topic: 'x'.repeat(1024), payload: Buffer.from('hello') });
    const d = new EventDecoder();
    const got: StreamEvent[] = [];
    for (const b of ev) for (const r of d.push(Buffer.from([b]))) if (r.ok) got.push(r.value);
    assert.equal(got.length, 1);
    assert.equal(got[0]?.topic.length, 1024);
    assert.equal(d.push(Buffer.from([0x04, 0x01])).at(-1)?.ok, false);
  });
});
