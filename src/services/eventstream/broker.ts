import type { Duplex } from 'node:stream';
import { type EventRun, EventRunReader, frameLengthAt } from '../../protocol/eventstream.js';
import type { JsonObject } from '../../protocol/json.js';
import { BrokerClient } from './client.js';
import { DEFAULT_QUEUE_LIMITS, type QueueLimits } from './queue.js';
import { isReservedTopic, parsePattern, prefixKeys } from '../../protocol/event-topics.js';

export interface BrokerOptions {
  readonly limits?: QueueLimits;
  /** Subscriptions one connection may hold; one more closes it (after an event on `_pilot.error` saying so). */
  readonly maxTopicsPerConn?: number;
  readonly onSubscribed?: (remote: string, topic: string) => void;
  readonly onUnsubscribed?: (remote: string, topic: string) => void;
  readonly onPublished?: (remote: string, topic: string, size: number) => void;
  readonly onRefused?: (remote: string, reason: string) => void;
}

export const DEFAULT_MAX_TOPICS_PER_CONN = 64;

/** How many connections `stats()` lists one by one (the worst queues first). */
const STATS_CLIENTS = 16;

/**
 * The pub/sub broker of one daemon (PROTOCOL.md §9.4), independent of how connections arrive.
 *
 * Per connection: the first event subscribes to its topic. A later event with an empty payload
 * whose topic the connection has not subscribed to yet adds that subscription (an extension: the
 * reference only knows one). Every other event is published to every matching subscription of the
 * other connections, never back to the sender, once per connection however many of its patterns
 * match. Topics under `_pilot.` cannot be published by clients. A connection the broker closes
 * (an event over the protocol's limits, too many subscriptions) is told why first: one last event
 * on `_pilot.error`.
 */
export class Broker {
  private readonly exact = new Map<string, Set<BrokerClient>>();
  private readonly prefixes = new Map<string, Set<BrokerClient>>();
  private readonly all = new Set<BrokerClient>();
  private readonly clients = new Set<BrokerClient>();
  private readonly limits: QueueLimits;
  private readonly maxTopics: number;
  private seq = 0;
  private counters = {
    published: 0,
    delivered: 0,
    dropped: 0,
    reserved_refused: 0,
    conns_refused: 0,
    connections_total: 0,
  };

  constructor(private readonly options: BrokerOptions = {}) {
    this.limits = options.limits ?? DEFAULT_QUEUE_LIMITS;
    this.maxTopics = options.maxTopicsPerConn ?? DEFAULT_MAX_TOPICS_PER_CONN;
  }

  /** Serves one connection until it closes. */
  accept(conn: Duplex, remote: string): void {
    const client = new BrokerClient(conn, remote, this.limits);
    const reader = new EventRunReader();
    this.clients.add(client);
    this.counters.connections_total++;
    let first = true;
    conn.on('data', (chunk: Buffer) => {
      if (client.refused) return;
      for (const r of reader.push(chunk)) {
        if (!r.ok) {
          this.refuse(client, r.error.message);
          return;
        }
        let run = r.value;
        if (first) {
          first = false;
          this.subscribe(client, run.topic);
          if (run.count === 1) continue;
          run = withoutFirst(run);
        } else if (run.payloadBytes === 0 && !client.patterns.has(run.topic)) {
          if (client.patterns.size >= this.maxTopics) {
            this.refuse(client, `more than ${this.maxTopics} subscriptions on one connection`);
            return;
          }
          this.subscribe(client, run.topic);
          continue;
        }
        this.publish(client, run);
      }
    });
    // The reference ends the whole connection when the client stops sending.
    conn.on('end', () => {
      this.remove(client);
      conn.end();
    });
    conn.on('error', () => conn.destroy());
    conn.on('close', () => this.remove(client));
  }

  /** Connections holding at least one subscription. */
  get subscriberCount(): number {
    let n = 0;
    for (const c of this.clients) if (c.patterns.size > 0) n++;
    return n;
  }

  stats(): JsonObject {
    let subscriptions = 0;
    let queuedBytes = 0;
    for (const c of this.clients) {
      subscriptions += c.patterns.size;
      queuedBytes += c.queuedBytes;
    }
    const worst = [...this.clients]
      .filter((c) => c.patterns.size > 0)
      .sort((x, y) => y.dropped - x.dropped || y.queuedBytes - x.queuedBytes)
      .slice(0, STATS_CLIENTS)
      .map((c) => ({
        remote: c.remote,
        topics: [...c.patterns],
        queued: c.queuedCount,
        queued_bytes: c.queuedBytes,
        dropped: c.dropped,
        written: c.written,
      }));
    return {
      connections: this.clients.size,
      subscribers: this.subscriberCount,
      subscriptions,
      queued_bytes: queuedBytes,
      ...this.counters,
      queue_limit_bytes: this.limits.maxBytes,
      queue_limit_events: this.limits.maxCount,
      clients: worst,
    };
  }

  /** Closes every connection. */
  closeAll(): void {
    for (const c of [...this.clients]) {
      this.remove(c);
      c.conn.destroy();
    }
  }

  private subscribe(client: BrokerClient, topic: string): void {
    client.patterns.add(topic);
    const p = parsePattern(topic);
    if (p.kind === 'all') this.all.add(client);
    else if (p.kind === 'prefix') addTo(this.prefixes, p.prefix, client);
    else addTo(this.exact, p.topic, client);
    this.options.onSubscribed?.(client.remote, topic);
  }

  /** Relays a run of events as they came: copied once, then shared by every recipient's queue. */
  private publish(sender: BrokerClient, run: EventRun): void {
    const topic = run.topic;
    if (isReservedTopic(topic)) {
      this.counters.reserved_refused += run.count;
      return;
    }
    this.counters.published += run.count;
    const onPublished = this.options.onPublished;
    if (onPublished) {
      const headerBytes = frameHeaderLength(run.frames);
      for (let at = 0; at < run.frames.length; ) {
        const length = frameLengthAt(run.frames, at);
        onPublished(sender.remote, topic, length - headerBytes);
        at += length;
      }
    }
    const seq = ++this.seq;
    let frames: Buffer | undefined;
    const exact = this.exact.get(topic);
    if (exact) for (const c of exact) frames = this.deliver(c, sender, seq, run, frames);
    if (this.prefixes.size > 0) {
      for (const key of prefixKeys(topic)) {
        const set = this.prefixes.get(key);
        if (set) for (const c of set) frames = this.deliver(c, sender, seq, run, frames);
      }
    }
    for (const c of this.all) frames = this.deliver(c, sender, seq, run, frames);
  }

  /**
   * Queues fan-out number `seq` (`run`) for `c`, unless it sent it or already has it; returns the
   * run's bytes as queued (copied on first use: a view of the connection's chunk would keep all of
   * it alive while queued).
   */
  private deliver(
    c: BrokerClient,
    sender: BrokerClient,
    seq: number,
    run: EventRun,
    frames: Buffer | undefined,
  ): Buffer | undefined {
    if (c === sender || c.lastSeq === seq) return frames;
    c.lastSeq = seq;
    const copy = frames ?? Buffer.from(run.frames);
    const taken = c.enqueue(copy, run.count);
    this.counters.delivered += taken;
    this.counters.dropped += run.count - taken;
    c.holdIfBehind(sender);
    return copy;
  }

  /** Closes a connection, telling it why first (an event on `_pilot.error`). */
  private refuse(client: BrokerClient, reason: string): void {
    this.counters.conns_refused++;
    this.options.onRefused?.(client.remote, reason);
    this.remove(client);
    client.refuse(reason);
  }

  private remove(client: BrokerClient): void {
    if (!this.clients.delete(client)) return;
    client.close();
    for (const topic of client.patterns) {
      const p = parsePattern(topic);
      if (p.kind === 'all') this.all.delete(client);
      else if (p.kind === 'prefix') removeFrom(this.prefixes, p.prefix, client);
      else removeFrom(this.exact, p.topic, client);
      this.options.onUnsubscribed?.(client.remote, topic);
    }
  }
}

function addTo(map: Map<string, Set<BrokerClient>>, key: string, client: BrokerClient): void {
  let set = map.get(key);
  if (!set) map.set(key, (set = new Set()));
  set.add(client);
}

function removeFrom(map: Map<string, Set<BrokerClient>>, key: string, client: BrokerClient): void {
  const set = map.get(key);
  if (!set) return;
  set.delete(client);
  if (set.size === 0) map.delete(key);
}

/** Bytes before the payload in each frame of a run (they share one topic). */
function frameHeaderLength(frames: Uint8Array): number {
  return 6 + (((frames[0] as number) << 8) | (frames[1] as number));
}

/** The run without its first event (the connection's subscription). */
function withoutFirst(run: EventRun): EventRun {
  const length = frameLengthAt(run.frames, 0);
  return {
    topic: run.topic,
    frames: run.frames.subarray(length),
    count: run.count - 1,
    payloadBytes: run.payloadBytes - (length - frameHeaderLength(run.frames)),
  };
}
