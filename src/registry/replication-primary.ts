import { createHash, timingSafeEqual } from 'node:crypto';
import type { Socket } from 'node:net';
import type { Logger } from '../log.js';
import type { JsonObject } from '../protocol/json.js';
import { encodeRegistryFrame, REGISTRY_MAX_MESSAGE } from '../protocol/registry-frame.js';
import { errorReply } from './dispatch.js';
import { RequestError } from './request-error.js';

/** At most this many standbys at once. */
export const MAX_STANDBYS = 8;
/** Changes within this window go out as one snapshot. */
export const SNAPSHOT_COALESCE_MS = 250;
/** As the reference: a heartbeat frame every 15 s keeps the standby's read deadline (45 s) fed. */
export const REPLICATION_HEARTBEAT_MS = 15_000;
/** A standby this far behind in reading gets no new snapshot until it drains, then the latest. */
const MAX_BACKLOG_BYTES = 4 * 1024 * 1024;

export interface ReplicationPrimaryOptions {
  readonly token: string;
  readonly log: Logger;
  /** The current state as a §5.9 object. */
  snapshot(): Promise<JsonObject>;
  /** Extra fields of each heartbeat frame (liveness and beacons, which change without a snapshot). */
  heartbeatFields(): Promise<JsonObject>;
  readonly coalesceMs?: number;
  readonly heartbeatMs?: number;
}

interface Subscriber {
  readonly socket: Socket;
  readonly remote: string;
  /** Skipped a snapshot because its socket was backed up. */
  behind: boolean;
}

/** Hashing first makes the comparison constant-time whatever the lengths. */
function tokenMatches(given: unknown, expected: string): boolean {
  if (typeof given !== 'string' || given === '') return false;
  const digest = (text: string): Buffer => createHash('sha256').update(text).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

/**
 * The primary side of PROTOCOL.md §5.10: each subscribed standby gets the whole state at once,
 * again after changes (coalesced), and a heartbeat every 15 s.
 *
 * A snapshot travels in one registry frame, bounded by 1 MiB as in the reference. A larger state
 * cannot be replicated: the standbys get an error frame instead, keep serving their last
 * snapshot, and get the next one that fits.
 */
export class ReplicationPrimary {
  readonly #opts: ReplicationPrimaryOptions;
  readonly #subscribers = new Set<Subscriber>();
  readonly #heartbeat: NodeJS.Timeout;
  #flush: NodeJS.Timeout | undefined;
  #oversizeReported = false;
  /** Snapshots are built one after the other, so that an older one never follows a newer one. */
  #sending: Promise<void> = Promise.resolve();

  constructor(opts: ReplicationPrimaryOptions) {
    this.#opts = opts;
    this.#heartbeat = setInterval(() => void this.#sendHeartbeat(), opts.heartbeatMs ?? REPLICATION_HEARTBEAT_MS);
    this.#heartbeat.unref();
  }

  get subscribers(): number {
    return this.#subscribers.size;
  }

  /** Checks the token and starts the stream with a snapshot; throws RequestError to refuse. */
  subscribe(socket: Socket, remote: string, msg: JsonObject): void {
    if (!tokenMatches(msg.token, this.#opts.token))
      throw new RequestError('forbidden', 'replication token missing or wrong');
    if (this.#subscribers.size >= MAX_STANDBYS) {
      throw new RequestError('rate_limited', `${MAX_STANDBYS} standbys are subscribed already; no more are accepted`);
    }
    const sub: Subscriber = { socket, remote, behind: false };
    this.#subscribers.add(sub);
    socket.once('close', () => {
      this.#subscribers.delete(sub);
      this.#opts.log.info({ standby: remote, standbys: this.#subscribers.size }, 'standby disconnected');
    });
    // A backlog that large came from writes that returned false, so 'drain' follows.
    socket.on('drain', () => {
      if (!sub.behind) return;
      sub.behind = false;
      this.#sendSnapshot([sub]);
    });
    this.#opts.log.info({ standby: remote, standbys: this.#subscribers.size }, 'standby subscribed');
    this.#sendSnapshot([sub]);
  }

  /** The durable state changed: a snapshot follows within the coalescing window. */
  changed(): void {
    if (this.#subscribers.size === 0 || this.#flush !== undefined) return;
    this.#flush = setTimeout(() => {
      this.#flush = undefined;
      this.#sendSnapshot([...this.#subscribers]);
    }, this.#opts.coalesceMs ?? SNAPSHOT_COALESCE_MS);
    this.#flush.unref();
  }

  close(): void {
    clearInterval(this.#heartbeat);
    clearTimeout(this.#flush);
    this.#flush = undefined;
  }

  #sendSnapshot(targets: readonly Subscriber[]): void {
    this.#sending = this.#sending.then(() => this.#buildAndSend(targets));
  }

  async #buildAndSend(targets: readonly Subscriber[]): Promise<void> {
    let frame: Uint8Array;
    try {
      frame = encodeRegistryFrame({ type: 'replication_snapshot', snapshot: await this.#opts.snapshot() });
    } catch (err) {
      const tooLarge = err instanceof RangeError;
      if (!tooLarge) this.#opts.log.error({ err }, 'cannot build the replication snapshot');
      else if (!this.#oversizeReported) {
        this.#opts.log.error(
          { err: err.message, limit: REGISTRY_MAX_MESSAGE },
          'replication snapshot exceeds the 1 MiB frame limit: standbys keep their last snapshot until the state fits again',
        );
      }
      this.#oversizeReported ||= tooLarge;
      const reason = tooLarge
        ? 'the registry state exceeds the 1 MiB replication frame limit'
        : 'the primary cannot build a snapshot';
      const notice = encodeRegistryFrame(errorReply('internal', `${reason}; keep serving the last snapshot`));
      for (const sub of targets) this.#write(sub, notice);
      return;
    }
    if (this.#oversizeReported) this.#opts.log.info('replication snapshot fits the frame limit again');
    this.#oversizeReported = false;
    for (const sub of targets) this.#write(sub, frame);
  }

  async #sendHeartbeat(): Promise<void> {
    if (this.#subscribers.size === 0) return;
    let frame: Uint8Array;
    try {
      frame = encodeRegistryFrame({ type: 'heartbeat', ...(await this.#opts.heartbeatFields()) });
    } catch (err) {
      this.#opts.log.warn(
        { err: err instanceof Error ? err.message : String(err) },
        'liveness left out of the replication heartbeat',
      );
      frame = encodeRegistryFrame({ type: 'heartbeat' });
    }
    for (const sub of this.#subscribers) this.#write(sub, frame);
  }

  #write(sub: Subscriber, frame: Uint8Array): void {
    if (sub.socket.destroyed) return;
    if (sub.socket.writableLength > MAX_BACKLOG_BYTES) {
      sub.behind = true;
      return;
    }
    sub.socket.write(frame);
  }
}
