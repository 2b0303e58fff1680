import {
  ackText,
  type DataFrame,
  DataType,
  dataTypeName,
  decodeFilePayload,
  errText,
  IDEMPOTENCY_KEY_TYPE,
  MAX_KEY_BYTES,
} from '../../protocol/dataexchange.js';
import type { DecodeError, DecodeResult } from '../../protocol/result.js';
import { sanitizeFileName } from './names.js';
import type { Admission } from './pipeline.js';
import type { KeyedRateLimiter } from '../../rate-limit.js';
import type { WebhookEvent } from '../../webhook-sink.js';
import type { QuotaReservation, SenderQuota } from './quota.js';
import type { ServiceState } from './state.js';
import { inboxMessageText, type DataStore, type StoredItem } from './store.js';

/**
 * What the data-exchange service decides for each incoming frame and how it stores it. Decisions
 * (idempotency key, duplicate, rate limit, quota reservation) are taken in frame order by the
 * connection's admission; the stores they start run concurrently and each reply settles once its
 * item is durably on disk.
 */

export const RESCAN_MIN_INTERVAL_MS = 2000;

export type Refusal = 'quota' | 'rate_limited' | 'too_large' | 'malformed' | 'save_failed';

export interface IntakeDeps {
  readonly store: Pick<DataStore, 'storeMessageText' | 'storeFile'>;
  readonly state: Pick<ServiceState, 'hasSeen' | 'markSeen' | 'recordFile' | 'save'>;
  readonly quota: SenderQuota;
  readonly rate: KeyedRateLimiter<string>;
  readonly now: () => number;
  /** Bytes per sender on disk now (inbox/ and received/). */
  readonly scanUsage: () => Promise<ReadonlyMap<string, number>>;
  readonly emit: (event: WebhookEvent, data: Record<string, unknown>) => void;
  readonly warn: (message: string, data: Record<string, unknown>) => void;
}

/** One decoder result: a frame, or why the stream could not be decoded. */
export type FrameInput = DecodeResult<DataFrame>;

type Job =
  | { readonly kind: 'message'; readonly type: number; readonly text: string }
  | { readonly kind: 'file'; readonly safeName: string; readonly data: Uint8Array };

interface Outcome {
  readonly reply: string;
  /** The item reached the disk (even if the reply is an ERR because the state could not be saved). */
  readonly stored: boolean;
}

function immediate(reply: string): Admission {
  return { reply: Promise.resolve(reply) };
}

function parseKey(payload: Uint8Array): string | undefined {
  const text = Buffer.from(payload).toString('ascii');
  return payload.length <= MAX_KEY_BYTES && /^[\x21-\x7e]+$/.test(text) ? text : undefined;
}

export class FrameIntake {
  messages = 0;
  files = 0;
  duplicates = 0;
  readonly refused: Record<Refusal, number> = { quota: 0, rate_limited: 0, too_large: 0, malformed: 0, save_failed: 0 };
  /** Idempotency keys (`sender key`) whose frame is being stored, with whether it got stored. */
  private readonly storing = new Map<string, Promise<boolean>>();
  private rescan: Promise<void> | undefined;
  private lastRescan = 0;

  constructor(private readonly deps: IntakeDeps) {}

  /** The admission of one connection from `from`: an idempotency key applies to the next data frame only. */
  connection(from: string): (input: FrameInput) => Promise<Admission> {
    let key: string | undefined;
    return async (input) => {
      if (!input.ok) return this.refuseStream(input.error);
      const frame = input.value;
      if (frame.type === IDEMPOTENCY_KEY_TYPE) {
        key = parseKey(frame.payload);
        return immediate(ackText(frame.type, frame.payload.length));
      }
      const frameKey = key;
      key = undefined;
      return this.admitData(frame, from, frameKey);
    };
  }

  private refuseStream(error: DecodeError): Admission {
    const tooLong = error.code === 'too_long';
    this.refused[tooLong ? 'too_large' : 'malformed']++;
    return { reply: Promise.resolve(`ERR frame ${tooLong ? 'too large' : 'malformed'}: ${error.message}`), last: true };
  }

  private async admitData(frame: DataFrame, from: string, key: string | undefined): Promise<Admission> {
    const { type } = frame;
    if (type < DataType.Text || type > DataType.File) return immediate(ackText(type, frame.payload.length));
    const file = type === DataType.File ? decodeFilePayload(frame.payload) : undefined;
    const size = file ? file.data.length : frame.payload.length;
    const duplicate = this.duplicateOf(from, key, type, size);
    if (duplicate !== undefined) return duplicate;
    if (!this.deps.rate.take(from, this.deps.now())) {
      this.refused.rate_limited++;
      return immediate(
        errText(type, `rate limited: more than ${this.deps.rate.ratePerSecond} messages/s from ${from}`),
      );
    }
    const date = new Date(this.deps.now());
    const job: Job = file
      ? { kind: 'file', safeName: sanitizeFileName(file.name), data: file.data }
      : { kind: 'message', type, text: inboxMessageText(type, frame.payload, from, date) };
    const bytes = job.kind === 'file' ? job.data.length : Buffer.byteLength(job.text);
    const reservation = await this.reserve(from, bytes);
    if (reservation === undefined) {
      this.refused.quota++;
      return immediate(
        errText(
          type,
          `quota exceeded: ${from} already stores ${this.deps.quota.used(from)} of ${this.deps.quota.limitBytes} bytes`,
        ),
      );
    }
    // Reserving yields (and may wait for a recount): another connection may have taken the key meanwhile.
    const late = this.duplicateOf(from, key, type, size);
    if (late !== undefined) {
      this.deps.quota.release(reservation);
      return late;
    }
    const outcome = this.store(job, from, key, date, reservation, size);
    if (key !== undefined) this.trackKey(from, key, outcome);
    return { reply: outcome.then((o) => o.reply) };
  }

  /**
   * The answer to a frame whose key was already stored, or is being stored right now: then it is
   * answered like the original once that settles, and never stored a second time.
   */
  private duplicateOf(from: string, key: string | undefined, type: number, size: number): Admission | undefined {
    if (key === undefined) return undefined;
    // Checked before the saved keys: the original's key is marked seen before its save completes.
    const original = this.storing.get(keyId(from, key));
    if (original === undefined) {
      if (!this.deps.state.hasSeen(from, key)) return undefined;
      this.duplicates++;
      return immediate(ackText(type, size));
    }
    const reply = original.then((stored) => {
      if (stored) {
        this.duplicates++;
        return ackText(type, size);
      }
      this.refused.save_failed++;
      return errText(type, 'save failed: the frame with the same idempotency key was not stored');
    });
    return { reply };
  }

  private trackKey(from: string, key: string, outcome: Promise<Outcome>): void {
    const id = keyId(from, key);
    const stored = outcome.then((o) => o.stored);
    this.storing.set(id, stored);
    void stored.then(() => {
      if (this.storing.get(id) === stored) this.storing.delete(id);
    });
  }

  /** Never rejects: a failure becomes an `ERR` reply. */
  private async store(
    job: Job,
    from: string,
    key: string | undefined,
    date: Date,
    reservation: QuotaReservation,
    size: number,
  ): Promise<Outcome> {
    const { store, state, quota } = this.deps;
    const type = job.kind === 'file' ? DataType.File : job.type;
    let stored: StoredItem;
    try {
      stored =
        job.kind === 'file'
          ? await store.storeFile(job.safeName, job.data, date)
          : await store.storeMessageText(job.type, job.text, date);
    } catch (err) {
      quota.release(reservation);
      return { reply: this.saveFailed(type, from, err), stored: false };
    }
    quota.commit(reservation, stored.size);
    try {
      if (job.kind === 'file') state.recordFile(stored.name, from);
      if (key !== undefined) state.markSeen(from, key);
      if (job.kind === 'file' || key !== undefined) await state.save();
    } catch (err) {
      return { reply: this.saveFailed(type, from, err), stored: true };
    }
    if (job.kind === 'file') {
      this.files++;
      this.deps.emit('file.received', { filename: job.safeName, path: stored.path, size });
    } else {
      this.messages++;
      this.deps.emit('message.received', { from, size, type: dataTypeName(type) });
    }
    return { reply: ackText(type, size), stored: true };
  }

  private saveFailed(type: number, from: string, err: unknown): string {
    const message = err instanceof Error ? err.message : String(err);
    this.refused.save_failed++;
    this.deps.warn('data exchange: save failed', { err: message, from });
    return errText(type, `save failed: ${message}`);
  }

  /** Reserves quota; before refusing, recounts the disk once in a while (items may have been cleared). */
  private async reserve(from: string, bytes: number): Promise<QuotaReservation | undefined> {
    while (this.rescan !== undefined) await this.rescan;
    const reservation = this.deps.quota.reserve(from, bytes);
    if (reservation !== undefined) return reservation;
    const now = this.deps.now();
    if (now - this.lastRescan < RESCAN_MIN_INTERVAL_MS) return undefined;
    this.lastRescan = now;
    this.rescan = this.recount().finally(() => {
      this.rescan = undefined;
    });
    while (this.rescan !== undefined) await this.rescan;
    return this.deps.quota.reserve(from, bytes);
  }

  private async recount(): Promise<void> {
    // A scan overlapping a store could count its item and then see it committed on top: wait
    // until no store holds a reservation (new ones wait for the recount).
    await this.deps.quota.whenSettled();
    try {
      this.deps.quota.reset(await this.deps.scanUsage());
    } catch (err) {
      this.deps.warn('data exchange: quota recount failed', { err: err instanceof Error ? err.message : String(err) });
    }
  }
}

function keyId(sender: string, key: string): string {
  return `${sender} ${key}`;
}
