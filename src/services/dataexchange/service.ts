import { formatAddr } from '../../protocol/address.js';
import { DataFrameDecoder, DataType, dataTypeName, decodeFilePayload, encodeTextFrame, type DataFrame } from '../../protocol/dataexchange.js';
import type { JsonObject } from '../../protocol/json.js';
import type { PilotConn } from '../../sdk/types.js';
import type { RunningService, ServiceContext, ServiceStarter } from '../types.js';
import { OutboxRunner } from './delivery.js';
import { sanitizeFileName } from './names.js';
import { Outbox } from './outbox.js';
import { DEFAULT_QUOTA_BYTES, DEFAULT_RATE_PER_SECOND, RateLimiter, SenderQuota } from './quota.js';
import { ServiceState } from './state.js';
import { DataStore } from './store.js';
import { ackText, DATA_EXCHANGE_PORT, errText, IDEMPOTENCY_KEY_TYPE, MAX_KEY_BYTES } from './wire.js';

export interface DataExchangeOptions {
  /** Bytes one sender may keep in inbox/ + received/ (default 256 MiB, env PILOT_DX_QUOTA_BYTES). */
  readonly quotaBytes?: number | undefined;
  /** Messages per second one sender may store (default 100, env PILOT_DX_RATE). */
  readonly ratePerSecond?: number | undefined;
}

const RESCAN_MIN_INTERVAL_MS = 2000;

type Refusal = 'quota' | 'rate_limited' | 'too_large' | 'malformed' | 'save_failed';

function envNumber(name: string): number | undefined {
  const v = process.env[name];
  if (v === undefined || v === '' || !/^\d+$/.test(v)) return undefined;
  return Number(v);
}

/**
 * Port 1001 (PROTOCOL.md §9.3): stores TEXT/JSON/BINARY in inbox/ and FILE in received/, and
 * answers every frame with `ACK <TYPE> <n> bytes` only once the item is durably on disk, or with
 * `ERR <TYPE> <reason>`. A malformed or oversized frame gets an `ERR` and the connection is closed.
 */
class DataExchangeService implements RunningService {
  readonly name = 'dataexchange';
  private readonly store: DataStore;
  private readonly quota: SenderQuota;
  private readonly rate: RateLimiter;
  private readonly runner: OutboxRunner;
  private readonly conns = new Set<PilotConn>();
  private lastRescan = 0;
  private messages = 0;
  private files = 0;
  private duplicates = 0;
  private readonly refused: Record<Refusal, number> = { quota: 0, rate_limited: 0, too_large: 0, malformed: 0, save_failed: 0 };
  private closeListener: (() => Promise<void>) | undefined;

  constructor(
    private readonly ctx: ServiceContext,
    private readonly state: ServiceState,
    options: DataExchangeOptions,
  ) {
    this.store = new DataStore(ctx.home);
    this.quota = new SenderQuota(options.quotaBytes ?? envNumber('PILOT_DX_QUOTA_BYTES') ?? DEFAULT_QUOTA_BYTES);
    this.rate = new RateLimiter(options.ratePerSecond ?? envNumber('PILOT_DX_RATE') ?? DEFAULT_RATE_PER_SECOND, ctx.now);
    this.runner = new OutboxRunner(new Outbox(ctx.home), ctx.net, ctx.now, ctx.log.child({ part: 'outbox' }));
  }

  async start(): Promise<void> {
    this.quota.reset(await this.state.scanUsage(this.store));
    const listener = await this.ctx.net.listen(DATA_EXCHANGE_PORT);
    listener.on('connection', (conn: PilotConn) => this.serve(conn));
    this.closeListener = () => listener.close();
    this.runner.start();
  }

  stats(): JsonObject {
    return {
      received_messages: this.messages,
      received_files: this.files,
      duplicates: this.duplicates,
      stored_bytes: this.quota.totalBytes,
      quota_bytes: this.quota.limitBytes,
      rate_per_second: this.rate.ratePerSecond,
      refused: { ...this.refused },
      outbox_pending: this.runner.counters.pending,
      outbox_delivered: this.runner.counters.delivered,
      outbox_expired: this.runner.counters.expired,
    };
  }

  async close(): Promise<void> {
    await this.runner.close();
    await this.closeListener?.();
    for (const c of this.conns) c.destroy();
  }

  /** Reads frames one at a time: the connection is paused while a frame is being stored. */
  private serve(conn: PilotConn): void {
    this.conns.add(conn);
    const from = formatAddr(conn.remoteAddr);
    const decoder = new DataFrameDecoder();
    const key: { value: string | undefined } = { value: undefined };
    let chain = Promise.resolve(true);
    conn.on('error', () => conn.destroy());
    conn.once('close', () => this.conns.delete(conn));
    conn.on('data', (chunk: Buffer) => {
      conn.pause();
      chain = chain.then(async (open) => {
        if (!open) return false;
        const more = await this.consume(conn, decoder.push(chunk), from, key).catch(() => {
          conn.destroy();
          return false;
        });
        if (more) conn.resume();
        return more;
      });
    });
    conn.once('end', () => void chain.then((open) => open && conn.end()));
  }

  /** Handles the frames one chunk completed; false once the connection has been refused. */
  private async consume(conn: PilotConn, results: ReturnType<DataFrameDecoder['push']>, from: string, key: { value: string | undefined }): Promise<boolean> {
    for (const r of results) {
      if (!r.ok) {
        const tooLong = r.error.code === 'too_long';
        this.refused[tooLong ? 'too_large' : 'malformed']++;
        conn.end(encodeTextFrame(`ERR frame ${tooLong ? 'too large' : 'malformed'}: ${r.error.message}`));
        return false;
      }
      const frame = r.value;
      if (frame.type === IDEMPOTENCY_KEY_TYPE) {
        const text = Buffer.from(frame.payload).toString('ascii');
        key.value = frame.payload.length <= MAX_KEY_BYTES && /^[\x21-\x7e]+$/.test(text) ? text : undefined;
        conn.write(encodeTextFrame(ackText(frame.type, frame.payload.length)));
        continue;
      }
      const reply = await this.handle(frame, from, key.value);
      key.value = undefined;
      conn.write(encodeTextFrame(reply));
    }
    return true;
  }

  /** Stores one frame and returns the reply text. */
  private async handle(frame: DataFrame, from: string, key: string | undefined): Promise<string> {
    const { type } = frame;
    const isFile = type === DataType.File;
    if (type < DataType.Text || type > DataType.File) return ackText(type, frame.payload.length);
    const file = isFile ? decodeFilePayload(frame.payload) : undefined;
    const size = file ? file.data.length : frame.payload.length;
    if (key !== undefined && this.state.hasSeen(from, key)) {
      this.duplicates++;
      return ackText(type, size);
    }
    if (!this.rate.take(from)) {
      this.refused.rate_limited++;
      return errText(type, `rate limited: more than ${this.rate.ratePerSecond} messages/s from ${from}`);
    }
    if (!(await this.withinQuota(from, size))) {
      this.refused.quota++;
      return errText(type, `quota exceeded: ${from} already stores ${this.quota.used(from)} of ${this.quota.limitBytes} bytes`);
    }
    const date = new Date(this.ctx.now());
    try {
      if (file) {
        const safe = sanitizeFileName(file.name);
        const stored = await this.store.storeFile(safe, file.data, date);
        this.state.recordFile(stored.name, from);
        if (key !== undefined) this.state.markSeen(from, key);
        await this.state.save();
        this.quota.add(from, stored.size);
        this.files++;
        this.ctx.webhooks.emit('file.received', { filename: safe, path: stored.path, size });
      } else {
        const stored = await this.store.storeMessage(type, frame.payload, from, date);
        if (key !== undefined) {
          this.state.markSeen(from, key);
          await this.state.save();
        }
        this.quota.add(from, stored.size);
        this.messages++;
        this.ctx.webhooks.emit('message.received', { from, size, type: dataTypeName(type) });
      }
    } catch (err) {
      this.refused.save_failed++;
      this.ctx.log.warn({ err: (err as Error).message, from }, 'data exchange: save failed');
      return errText(type, `save failed: ${(err as Error).message}`);
    }
    return ackText(type, size);
  }

  /** Checks the quota; before refusing, recounts the disk once in a while (items may have been cleared). */
  private async withinQuota(from: string, size: number): Promise<boolean> {
    if (this.quota.allows(from, size)) return true;
    const now = this.ctx.now();
    if (now - this.lastRescan < RESCAN_MIN_INTERVAL_MS) return false;
    this.lastRescan = now;
    this.quota.reset(await this.state.scanUsage(this.store));
    return this.quota.allows(from, size);
  }
}

/** The data exchange service with these limits (unset ones: env PILOT_DX_QUOTA_BYTES / PILOT_DX_RATE, then the defaults). */
export function dataExchangeStarter(options: DataExchangeOptions = {}): ServiceStarter {
  return async (ctx) => {
    const service = new DataExchangeService(ctx, await ServiceState.open(ctx.home), options);
    await service.start();
    return service;
  };
}
