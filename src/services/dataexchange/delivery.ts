import { ensureDir } from '../../crypto/atomic-file.js';
import type { Logger } from '../../log.js';
import { parseAddr } from '../../protocol/address.js';
import { DATA_EXCHANGE_PORT, DataType, encodeFilePayload, isAck } from '../../protocol/dataexchange.js';
import type { PilotNetwork } from '../../pilot-net.js';
import {
  afterAttempt,
  expiredBeforeAttempt,
  type DeliveryOutcome,
  type OutboxItem,
  type Outbox,
  type Transition,
} from './outbox.js';
import { FrameChannel } from './frame-channel.js';

const SCAN_INTERVAL_MS = 500;
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
 * Delivers outbox items while the daemon runs: scans outbox/ for due items, sends each with its
 * idempotency key, and applies the state machine of outbox.ts to the result.
 */
export class OutboxRunner {
  readonly counters: OutboxCounters = { delivered: 0, expired: 0, attempts: 0, pending: 0 };
  private readonly inFlight = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private scanning = false;
  private closed = false;

  constructor(
    private readonly outbox: Outbox,
    private readonly net: PilotNetwork,
    private readonly now: () => number,
    private readonly log: Logger,
  ) {}

  start(): void {
    // With the directory in place an idle scan lists nothing instead of failing (and making an
    // error) every second.
    ensureDir(this.outbox.dir).then(
      () => this.schedule(0),
      () => this.schedule(0),
    );
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
  }

  private schedule(ms: number): void {
    if (this.closed) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.scan(), ms);
    this.timer.unref();
  }

  private async scan(): Promise<void> {
    if (this.scanning || this.closed) return;
    this.scanning = true;
    try {
      const items = await this.outbox.list();
      this.counters.pending = items.length;
      const now = this.now();
      for (const item of items) {
        if (this.inFlight.size >= MAX_PARALLEL) break;
        if (this.inFlight.has(item.id) || (item.nextAttemptAt > now && item.expiresAt > now)) continue;
        this.inFlight.add(item.id);
        void this.attempt(item).finally(() => {
          this.inFlight.delete(item.id);
          this.schedule(0);
        });
      }
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'outbox scan failed');
    } finally {
      this.scanning = false;
      this.schedule(SCAN_INTERVAL_MS);
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
