import type { Duplex } from 'node:stream';
import { PilotError } from '../errors.js';
import type { Addr } from '../protocol/address.js';
import {
  EVENT_MAX_PAYLOAD,
  EVENT_MAX_TOPIC,
  EventDecoder,
  EventRunReader,
  encodeEvent,
  frameLengthAt,
} from '../protocol/eventstream.js';
import { DROPPED_TOPIC, ERROR_TOPIC, topicMatches } from '../protocol/event-topics.js';
import { abortError } from './abort.js';
import { toAddr } from './validate.js';

/**
 * Publish/subscribe through a daemon's event stream broker (port 1002, PROTOCOL.md §9.4).
 * Subscribers and publishers connect to the broker of the publisher's daemon.
 */

export const EVENT_STREAM_PORT = 1002;

/** What these helpers need from a driver (the SDK `Driver` or the daemon's in-process network). */
export interface EventDialer {
  /** `data` are the stream's first bytes: sent before anything written to the returned stream. */
  dial(
    addr: Addr,
    port: number,
    options?: { signal?: AbortSignal; timeoutMs?: number; data?: Uint8Array },
  ): Promise<Duplex>;
}

export interface PilotEvent {
  readonly topic: string;
  readonly data: Buffer;
}

export interface SubscribeOptions {
  signal?: AbortSignal;
  /** Dial timeout (default: the driver's). */
  timeoutMs?: number;
  /** Broker port (default 1002). */
  port?: number;
  /**
   * Also subscribe to `_pilot.dropped` so the broker reports events it dropped for this
   * connection (default true). Needs a pilot-ts broker; a reference broker would relay the extra
   * subscription frame as an empty event on `_pilot.dropped`.
   */
  dropNotices?: boolean;
  /** Events held for a slow consumer before the connection is paused (default 1024). */
  maxBuffered?: number;
}

export interface Subscription extends AsyncIterableIterator<PilotEvent> {
  readonly topics: readonly string[];
  /** Events the broker dropped for this subscriber because it did not keep up (from its notices). */
  readonly dropped: number;
  close(): void;
}

function checkTopic(topic: string): void {
  if (Buffer.byteLength(topic) > EVENT_MAX_TOPIC)
    throw new PilotError('invalid_argument', `topic is longer than ${EVENT_MAX_TOPIC} bytes`);
}

class EventSubscription implements Subscription {
  private readonly reader = new EventRunReader();
  /** Events not taken yet, from `head` on (emptied in place once all are taken). */
  private readonly buffer: (PilotEvent | undefined)[] = [];
  private head = 0;
  private waiter: { resolve: (r: IteratorResult<PilotEvent>) => void; reject: (e: unknown) => void } | null = null;
  private failure: unknown = null;
  private ended = false;
  private droppedCount = 0;
  private readonly yieldNotices: boolean;
  private readonly onAbort = (): void => this.finish(abortError(this.signal as AbortSignal));

  constructor(
    private readonly conn: Duplex,
    readonly topics: readonly string[],
    private readonly maxBuffered: number,
    private readonly signal: AbortSignal | undefined,
  ) {
    this.yieldNotices = topics.includes(DROPPED_TOPIC);
    conn.on('data', (chunk: Buffer) => this.onData(chunk));
    conn.once('end', () => this.finish(null));
    conn.once('close', () => this.finish(null));
    conn.once('error', (err: Error) =>
      this.finish(new PilotError('connection_failed', `event stream: ${err.message}`, undefined, { cause: err })),
    );
    signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  get dropped(): number {
    return this.droppedCount;
  }

  private onData(chunk: Buffer): void {
    for (const r of this.reader.push(chunk)) {
      if (!r.ok) {
        this.finish(new PilotError('protocol', `event stream: ${r.error.message}`));
        return;
      }
      const { topic, frames } = r.value;
      const header = 6 + (((frames[0] as number) << 8) | (frames[1] as number));
      for (let at = 0; at < frames.length; ) {
        const end = at + frameLengthAt(frames, at);
        const data = frames.subarray(at + header, end);
        at = end;
        if (topic === ERROR_TOPIC) {
          // The broker's last word before it closes the connection: why.
          this.finish(brokerRefusal(data));
          return;
        }
        if (topic === DROPPED_TOPIC) {
          const n = parseDropped(data);
          if (n !== undefined) this.droppedCount = Math.max(this.droppedCount, n);
          if (!this.yieldNotices) continue;
        }
        this.deliver({ topic, data });
      }
    }
  }

  private deliver(event: PilotEvent): void {
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w.resolve({ value: event, done: false });
      return;
    }
    this.buffer.push(event);
    if (this.buffer.length - this.head >= this.maxBuffered) this.conn.pause();
  }

  private finish(err: unknown): void {
    if (this.ended) return;
    this.ended = true;
    this.failure = err;
    this.signal?.removeEventListener('abort', this.onAbort);
    this.conn.destroy();
    if (err !== null) {
      this.buffer.length = 0;
      this.head = 0;
    }
    const w = this.waiter;
    this.waiter = null;
    if (!w) return;
    if (err !== null) w.reject(err);
    else w.resolve({ value: undefined, done: true });
  }

  next(): Promise<IteratorResult<PilotEvent>> {
    if (this.head < this.buffer.length) {
      const event = this.buffer[this.head] as PilotEvent;
      this.buffer[this.head++] = undefined;
      const left = this.buffer.length - this.head;
      if (left === 0) {
        this.buffer.length = 0;
        this.head = 0;
      } else if (this.head >= 1024 && this.head * 2 >= this.buffer.length) {
        this.buffer.splice(0, this.head);
        this.head = 0;
      }
      if (left < this.maxBuffered / 2 && this.conn.isPaused()) this.conn.resume();
      return Promise.resolve({ value: event, done: false });
    }
    if (this.ended) {
      if (this.failure !== null) {
        const err = this.failure;
        this.failure = null;
        return Promise.reject(err);
      }
      return Promise.resolve({ value: undefined, done: true });
    }
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  return(): Promise<IteratorResult<PilotEvent>> {
    this.close();
    return Promise.resolve({ value: undefined, done: true });
  }

  close(): void {
    this.finish(null);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

/** The error a broker's `_pilot.error` event stands for. */
function brokerRefusal(data: Uint8Array): PilotError {
  let reason = Buffer.from(data).toString('utf8');
  try {
    const v: unknown = JSON.parse(reason);
    if (typeof v === 'object' && v !== null && 'error' in v && typeof v.error === 'string') reason = v.error;
  } catch {
    // not JSON: the text itself is the reason
  }
  return new PilotError('refused', `event stream closed by the broker: ${reason}`);
}

function parseDropped(data: Buffer): number | undefined {
  try {
    const v: unknown = JSON.parse(data.toString('utf8'));
    if (typeof v === 'object' && v !== null && 'dropped' in v && typeof v.dropped === 'number') return v.dropped;
  } catch {
    // not a notice from a pilot-ts broker
  }
  return undefined;
}

/**
 * Subscribes to one or more topics (`*` = all; `prefix.*` = every topic under `prefix.`). The
 * first topic is the subscription the reference broker knows; further topics are sent as further
 * subscription frames (topic, empty payload), which a pilot-ts broker adds to the same connection.
 * Iterate the result for events; `dropped` counts events the broker had to drop for this
 * subscriber. Ends when the broker closes the connection; aborting `signal` fails the iteration.
 */
export async function subscribe(
  driver: EventDialer,
  target: Addr | string,
  topics: string | readonly string[],
  options: SubscribeOptions = {},
): Promise<Subscription> {
  const list = typeof topics === 'string' ? [topics] : [...new Set(topics)];
  if (list.length === 0) throw new PilotError('invalid_argument', 'no topic to subscribe to');
  list.forEach(checkTopic);
  const wanted = [...list];
  if (options.dropNotices !== false && !list.some((t) => topicMatches(t, DROPPED_TOPIC))) wanted.push(DROPPED_TOPIC);
  // The subscriptions go with the dial (in the SYN to a pilot-ts peer): events flow a round trip sooner.
  const subscriptions = Buffer.concat(wanted.map((topic) => encodeEvent({ topic, payload: new Uint8Array(0) })));
  const conn = await driver.dial(toAddr(target), options.port ?? EVENT_STREAM_PORT, {
    ...dialOptions(options),
    data: subscriptions,
  });
  return new EventSubscription(conn, list, Math.max(1, options.maxBuffered ?? 1024), options.signal);
}

export interface PublishOptions {
  signal?: AbortSignal;
  timeoutMs?: number;
  port?: number;
}

/** A connection that publishes many events; events it is sent back (its own subscription) are discarded. */
export interface Publisher {
  /**
   * Resolves once the event is queued for the connection; events published in the same turn go
   * out in one write. Waits while the connection is congested.
   */
  publish(topic: string, data: string | Uint8Array): Promise<void>;
  close(): Promise<void>;
}

const EMPTY = new Uint8Array(0);
const RESOLVED: Promise<void> = Promise.resolve();

/** Events published in one turn are written to the connection together, in writes of up to this size. */
const PUBLISH_BATCH = 64 * 1024;

class EventPublisher implements Publisher {
  private subscribed = false;
  private failure: Error | null = null;
  private readonly decoder = new EventDecoder();
  /** Encoded events not written yet: `batch[start, used)`; what comes before was written. */
  private batch: Buffer = Buffer.alloc(0);
  private start = 0;
  private used = 0;
  private flushQueued = false;
  /** The last write was refused: the next publish waits for 'drain'. */
  private congested = false;
  private lastTopic = '';
  /** The frame header's topic part (length and bytes) of `lastTopic`. */
  private topicHeader: Buffer = Buffer.alloc(2);
  private readonly flushLater = (): void => {
    this.flushQueued = false;
    this.flush();
  };

  constructor(private readonly conn: Duplex) {
    // Events sent back (this connection's own subscription) are discarded; a refusal is kept as the reason.
    conn.on('data', (chunk: Buffer) => {
      for (const r of this.decoder.push(chunk)) {
        if (!r.ok) return;
        if (r.value.topic === ERROR_TOPIC) this.failure ??= brokerRefusal(r.value.payload);
      }
    });
    conn.on('error', (err: Error) => {
      this.failure ??= err;
    });
    conn.once('close', () => {
      this.failure ??= new PilotError('connection_failed', 'event stream connection closed');
    });
  }

  publish(topic: string, data: string | Uint8Array): Promise<void> {
    try {
      if (topic !== this.lastTopic) this.useTopic(topic);
      const payload = typeof data === 'string' ? Buffer.from(data) : data;
      if (payload.length > EVENT_MAX_PAYLOAD)
        throw new PilotError('invalid_argument', `event is larger than ${EVENT_MAX_PAYLOAD} bytes`);
      if (this.failure) throw this.failure;
      if (this.congested)
        return this.drained().then(() => {
          // Another publish may have switched topics while this one waited.
          if (topic !== this.lastTopic) this.useTopic(topic);
          return this.queue(payload);
        });
      return this.queue(payload);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Encodes the topic's frame header once for all the events published on it in a row. */
  private useTopic(topic: string): void {
    checkTopic(topic);
    const bytes = Buffer.from(topic, 'utf8');
    const header = Buffer.allocUnsafe(2 + bytes.length);
    header.writeUInt16BE(bytes.length, 0);
    bytes.copy(header, 2);
    this.lastTopic = topic;
    this.topicHeader = header;
  }

  /** Appends an event on the current topic; resolves at once unless the connection must drain first. */
  private queue(payload: Uint8Array): Promise<void> {
    // The first event on a connection is its subscription (§9.4), as the reference CLI does it.
    if (!this.subscribed) {
      this.subscribed = true;
      this.append(EMPTY);
    }
    this.append(payload);
    if (this.used - this.start >= PUBLISH_BATCH) {
      if (!this.flush()) return this.drained();
    } else if (!this.flushQueued) {
      // Written once the caller's current run of work ends: a loop of publishes makes one write.
      this.flushQueued = true;
      process.nextTick(this.flushLater);
    }
    return RESOLVED;
  }

  private append(payload: Uint8Array): void {
    const header = this.topicHeader;
    const length = header.length + 4 + payload.length;
    if (this.batch.length - this.used < length) {
      this.flush();
      this.batch = Buffer.allocUnsafe(Math.max(PUBLISH_BATCH, length));
      this.start = 0;
      this.used = 0;
    }
    const batch = this.batch;
    let at = this.used;
    // Topics are short: a loop beats a call into the runtime.
    for (let i = 0; i < header.length; i++) batch[at++] = header[i] as number;
    const n = payload.length;
    batch[at] = n >>> 24;
    batch[at + 1] = (n >>> 16) & 0xff;
    batch[at + 2] = (n >>> 8) & 0xff;
    batch[at + 3] = n & 0xff;
    batch.set(payload, at + 4);
    this.used = at + 4 + n;
  }

  /** Writes the pending events; false when the connection asks to wait for 'drain'. */
  private flush(): boolean {
    if (this.used === this.start) return !this.congested;
    const out = this.batch.subarray(this.start, this.used);
    this.start = this.used;
    if (this.conn.destroyed) return true;
    if (!this.conn.write(out)) this.congested = true;
    return !this.congested;
  }

  private drained(): Promise<void> {
    return new Promise((resolve, reject) => {
      const done = (): void => {
        this.conn.off('drain', done).off('close', done);
        this.congested = false;
        if (this.conn.destroyed && this.failure) reject(this.failure);
        else resolve();
      };
      if (!this.conn.writableNeedDrain || this.conn.destroyed) {
        this.congested = false;
        resolve();
        return;
      }
      this.conn.on('drain', done).on('close', done);
    });
  }

  async close(): Promise<void> {
    this.flush();
    if (this.conn.destroyed) return;
    await new Promise<void>((resolve) => {
      this.conn.once('close', () => resolve());
      this.conn.end(() => resolve());
      setTimeout(() => resolve(), 1000).unref();
    });
    this.conn.destroy();
  }
}

export async function openPublisher(
  driver: EventDialer,
  target: Addr | string,
  options: PublishOptions = {},
): Promise<Publisher> {
  const conn = await driver.dial(toAddr(target), options.port ?? EVENT_STREAM_PORT, dialOptions(options));
  return new EventPublisher(conn);
}

/** Publishes one event (connect, subscribe to the topic, publish, close); resolves with the payload size. */
export async function publish(
  driver: EventDialer,
  target: Addr | string,
  topic: string,
  data: string | Uint8Array,
  options: PublishOptions = {},
): Promise<number> {
  checkTopic(topic);
  const payload = typeof data === 'string' ? Buffer.from(data) : data;
  const pub = await openPublisher(driver, target, options);
  try {
    await pub.publish(topic, payload);
  } finally {
    await pub.close();
  }
  return payload.length;
}

function dialOptions(options: { signal?: AbortSignal; timeoutMs?: number }): {
  signal?: AbortSignal;
  timeoutMs?: number;
} {
  const out: { signal?: AbortSignal; timeoutMs?: number } = {};
  if (options.signal) out.signal = options.signal;
  if (options.timeoutMs !== undefined) out.timeoutMs = options.timeoutMs;
  return out;
}
