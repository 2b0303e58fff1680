import { formatAddr } from '../../protocol/address.js';
import { DATA_EXCHANGE_PORT, DataFrameDecoder, encodeTextFrame } from '../../protocol/dataexchange.js';
import type { JsonObject } from '../../protocol/json.js';
import type { PilotConn } from '../../pilot-net.js';
import type { KeyedRateLimiter } from '../../rate-limit.js';
import type { RunningService, ServiceContext, ServiceStarter } from '../types.js';
import { OutboxRunner } from './delivery.js';
import { FrameIntake, type FrameInput } from './intake.js';
import { Outbox } from './outbox.js';
import { OrderedReplies, type PipelineLimits } from './pipeline.js';
import { DEFAULT_QUOTA_BYTES, DEFAULT_RATE_PER_SECOND, SenderQuota, senderRateLimiter } from './quota.js';
import { ServiceState } from './state.js';
import { DataStore } from './store.js';

export interface DataExchangeOptions {
  /** Bytes one sender may keep in inbox/ + received/ (default 256 MiB, env PILOT_DX_QUOTA_BYTES). */
  readonly quotaBytes?: number | undefined;
  /** Messages per second one sender may store (default 100, env PILOT_DX_RATE). */
  readonly ratePerSecond?: number | undefined;
}

/**
 * Frames of one connection stored at once. Each store waits for two fsyncs, so overlapping them is
 * what makes a window of outstanding frames fast; the byte bound keeps a connection sending large
 * files from holding more than two of them in memory.
 */
const CONNECTION_LIMITS: PipelineLimits = { maxInFlight: 16, maxInFlightBytes: 32 * 1024 * 1024 };

/** How long a connection whose last reply was sent may wait for the peer to finish before it is reset. */
const FINISH_LINGER_MS = 5000;

function envNumber(name: string): number | undefined {
  const v = process.env[name];
  if (v === undefined || v === '' || !/^\d+$/.test(v)) return undefined;
  return Number(v);
}

/**
 * Port 1001 (PROTOCOL.md §9.3): stores TEXT/JSON/BINARY in inbox/ and FILE in received/, and
 * answers every frame with `ACK <TYPE> <n> bytes` only once the item is durably on disk, or with
 * `ERR <TYPE> <reason>`. A malformed or oversized frame gets an `ERR` and the connection is closed.
 * The frames of one connection are stored concurrently (see CONNECTION_LIMITS); their replies
 * leave in frame order.
 */
class DataExchangeService implements RunningService {
  readonly name = 'dataexchange';
  private readonly store: DataStore;
  private readonly quota: SenderQuota;
  private readonly rate: KeyedRateLimiter<string>;
  private readonly intake: FrameIntake;
  private readonly runner: OutboxRunner;
  private readonly conns = new Set<PilotConn>();
  private closeListener: (() => Promise<void>) | undefined;

  constructor(
    private readonly ctx: ServiceContext,
    private readonly state: ServiceState,
    options: DataExchangeOptions,
  ) {
    this.store = new DataStore(ctx.home);
    this.quota = new SenderQuota(options.quotaBytes ?? envNumber('PILOT_DX_QUOTA_BYTES') ?? DEFAULT_QUOTA_BYTES);
    this.rate = senderRateLimiter(options.ratePerSecond ?? envNumber('PILOT_DX_RATE') ?? DEFAULT_RATE_PER_SECOND);
    this.intake = new FrameIntake({
      store: this.store,
      state,
      quota: this.quota,
      rate: this.rate,
      now: ctx.now,
      scanUsage: () => state.scanUsage(this.store),
      emit: (event, data) => ctx.webhooks.emit(event, data),
      warn: (message, data) => ctx.log.warn(data, message),
    });
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
    const intake = this.intake;
    return {
      received_messages: intake.messages,
      received_files: intake.files,
      duplicates: intake.duplicates,
      stored_bytes: this.quota.totalBytes,
      quota_bytes: this.quota.limitBytes,
      rate_per_second: this.rate.ratePerSecond,
      refused: { ...intake.refused },
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

  private serve(conn: PilotConn): void {
    this.conns.add(conn);
    const decoder = new DataFrameDecoder();
    let finished = false;
    // Our side has said its last: what the peer still sends is discarded (a closed window would
    // hold back its FIN), and a peer that has not finished within the linger is reset.
    const finish = (): void => {
      finished = true;
      conn.removeAllListeners('data');
      conn.on('data', () => undefined);
      conn.resume();
      const timer = setTimeout(() => conn.destroy(), FINISH_LINGER_MS);
      timer.unref();
      conn.once('close', () => clearTimeout(timer));
    };
    const pipeline = new OrderedReplies<FrameInput>(
      {
        admit: this.intake.connection(formatAddr(conn.remoteAddr)),
        sizeOf: (input) => (input.ok ? input.value.payload.length : 0),
        send: (reply, last) => {
          if (!last) return conn.write(encodeTextFrame(reply));
          conn.end(encodeTextFrame(reply));
          finish();
          return true;
        },
        end: () => {
          conn.end();
          finish();
        },
        fail: () => conn.destroy(),
        pause: () => {
          if (!finished) conn.pause();
        },
        resume: () => {
          if (!finished) conn.resume();
        },
      },
      CONNECTION_LIMITS,
    );
    conn.on('error', () => conn.destroy());
    conn.once('close', () => {
      this.conns.delete(conn);
      pipeline.abort();
    });
    conn.on('drain', () => pipeline.writable());
    conn.on('data', (chunk: Buffer) => pipeline.push(decoder.push(chunk)));
    conn.once('end', () => pipeline.endOfInput());
  }
}

/** Removes what a crash left in the service's directories, each through the module that owns it. */
async function removeLeftovers(ctx: ServiceContext): Promise<void> {
  try {
    const removed = [
      ...(await ServiceState.removeLeftovers(ctx.home)),
      ...(await new DataStore(ctx.home).removeLeftovers()),
      ...(await new Outbox(ctx.home).removeLeftovers()),
    ];
    if (removed.length > 0) ctx.log.info({ removed }, 'removed files an interrupted write left behind');
  } catch (err) {
    ctx.log.warn({ err: (err as Error).message }, 'could not remove files an interrupted write left behind');
  }
}

/** The data exchange service with these limits (unset ones: env PILOT_DX_QUOTA_BYTES / PILOT_DX_RATE, then the defaults). */
export function dataExchangeStarter(options: DataExchangeOptions = {}): ServiceStarter {
  return async (ctx) => {
    await removeLeftovers(ctx);
    const service = new DataExchangeService(ctx, await ServiceState.open(ctx.home), options);
    await service.start();
    return service;
  };
}
