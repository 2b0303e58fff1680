import { type FSWatcher, watch } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { ensureDir } from '../../crypto/atomic-file.js';
import type { Logger } from '../../log.js';
import { parseAddr } from '../../protocol/address.js';
import { DATA_EXCHANGE_PORT, DataType, encodeFilePayload, isAck } from '../../protocol/dataexchange.js';
import type { PilotNetwork } from '../../pilot-net.js';
import {
  afterAttempt,
  dueAt,
  expiredBeforeAttempt,
  isDue,
  type DeliveryOutcome,
  type OutboxItem,
  type Outbox,
  type Transition,
} from './outbox.js';
import { FrameChannel } from './frame-channel.js';

/**
 * outbox/ is listed when a file in it changes (an enqueue by pilotctl or the SDK, or our own
 * update), when the earliest item falls due, and at least this often in case an event was missed
 * (e.g. on a network file system).
 */
const RESCAN_INTERVAL_MS = 30_000;
/** Without file-system events (the watch could not start or failed) it is listed this often. */
const POLL_INTERVAL_MS = 500;
/** The events of one write (temp file, rename) are taken together. */
const EVENT_SETTLE_MS = 10;
const DIAL_TIMEOUT_MS = 5000;
const REPLY_TIMEOUT_MS = 30_000;
const MAX_PARALLEL = 4;

export interface OutboxCounters {
  delivered: number;
  expired: number;
  attempts: number;
  pending: number;
}

/**
 * Delivers outbox items while the daemon runs: lists outbox/ when something there changed or an
 * item falls due, sends each due item with its idempotency key, and applies the state machine of
 * outbox.ts to the result. An idle daemon with an empty outbox does not touch the directory.
 */
export class OutboxRunner {
  readonly counters: OutboxCounters = { delivered: 0, expired: 0, attempts: 0, pending: 0 };
  private readonly inFlight = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  /** When the armed timer fires (performance.now()). */
  private timerAt = 0;
  private watcher: FSWatcher | undefined;
  private scanning = false;
  /** Something changed while a scan ran: list again when it ends. */
  private rescan = false;
  private closed = false;

  constructor(
    private readonly outbox: Outbox,
    private readonly net: PilotNetwork,
    private readonly now: () => number,
    private readonly log: Logger,
  ) {}

  start(): void {
    // With the directory in place it can be watched, and a scan lists nothing instead of failing.
    ensureDir(this.outbox.dir).then(
      () => {
        this.watch();
        this.wake(0);
      },
      () => this.wake(0),
    );
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.watcher?.close();
    this.watcher = undefined;
  }

  private watch(): void {
    if (this.closed) return;
    try {
      const watcher = watch(this.outbox.dir, { persistent: false }, () => this.wake(EVENT_SETTLE_MS));
      watcher.on('error', (err) => {
        this.log.warn({ err: err.message }, 'outbox watch failed; listing it every 500 ms');
        watcher.close();
        if (this.watcher === watcher) this.watcher = undefined;
        this.wake(0);
      });
      this.watcher = watcher;
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'cannot watch the outbox; listing it every 500 ms');
    }
  }

  /** Scans in `ms` unless a scan is due sooner already. */
  private wake(ms: number): void {
    if (this.closed) return;
    if (this.scanning) {
      this.rescan = true;
      return;
    }
    const at = performance.now() + ms;
    if (this.timer !== undefined && this.timerAt <= at) return;
    clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.scan();
    }, ms);
    this.timer.unref();
  }

  private async scan(): Promise<void> {
    if (this.scanning || this.closed) return;
    this.scanning = true;
    this.rescan = false;
    let nextDue = Number.POSITIVE_INFINITY;
    try {
      const items = await this.outbox.list();
      this.counters.pending = items.length;
      const now = this.now();
      for (const item of items) {
        if (this.inFlight.has(item.id)) continue;
        if (!isDue(item, now)) {
          nextDue = Math.min(nextDue, dueAt(item));
          continue;
        }
        // Due but over the parallel limit: taken when an attempt in flight ends.
        if (this.inFlight.size >= MAX_PARALLEL) continue;
        this.inFlight.add(item.id);
        void this.attempt(item).finally(() => {
          this.inFlight.delete(item.id);
          this.wake(0);
        });
      }
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'outbox scan failed');
    } finally {
      this.scanning = false;
      if (this.rescan) this.wake(0);
      else {
        this.wake(this.watcher ? RESCAN_INTERVAL_MS : POLL_INTERVAL_MS);
        if (nextDue !== Number.POSITIVE_INFINITY) this.wake(Math.max(0, nextDue - this.now()));
      }
    }
  }

  private async attempt(item: OutboxItem): Promise<void> {
    const expired = expiredBeforeAttempt(item, this.now());
    if (expired) return this.apply(expired);
    this.counters.attempts++;
    const outcome = await this.deliver(item);
    await this.apply(afterAttempt(item, outcome, this.now()));
  }

  private async apply(t: Transition): Promise<void> {
    try {
      if (t.action === 'delete') {
        this.counters.delivered++;
        return;
      }
      if (t.action === 'expire') {
        this.counters.expired++;
        this.log.warn({ id: t.item.id, target: t.item.target, reason: t.reason }, 'outbox item expired');
        await this.outbox.expire(t.item, t.reason);
      } else {
        await this.outbox.update(t.item);
      }
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'outbox update failed');
    }
  }

  /** One delivery; the item is removed before this resolves when the receiver acknowledged it. */
  private async deliver(item: OutboxItem): Promise<DeliveryOutcome> {
    const addr = parseAddr(item.target);
    if (!addr.ok) return { ok: false, error: `bad target ${item.target}` };
    let channel: FrameChannel | undefined;
    try {
      const data = await this.outbox.data(item.id);
      const payload = item.type === DataType.File ? encodeFilePayload({ name: item.filename ?? '', data }) : data;
      const conn = await this.net.dial(addr.value, DATA_EXCHANGE_PORT, { timeoutMs: DIAL_TIMEOUT_MS });
      channel = new FrameChannel(conn);
      await channel.sendKey(item.id);
      await channel.sendFrame(item.type, payload);
      await channel.reply(REPLY_TIMEOUT_MS);
      const reply = await channel.reply(REPLY_TIMEOUT_MS);
      if (!isAck(reply)) return { ok: false, error: reply };
      await this.outbox.remove(item.id);
      return { ok: true };
    } catch (err) {
      return { ok: false, error: (err as Error).message };
    } finally {
      channel?.close();
    }
  }
}
