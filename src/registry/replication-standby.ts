import type { Logger } from '../log.js';
import type { JsonObject } from '../protocol/json.js';
import { FrameSocket, type HostPort } from './frame-socket.js';
import type { Liveness } from './liveness.js';
import { parseLiveFields, parseSnapshot } from './snapshot-import.js';
import type { BeaconRecord, RegistryStore } from './store.js';

/** Opens the standby's connection to the primary: plain TCP by default; a TLS dialer fits here. */
export type PrimaryConnector = (target: HostPort, timeoutMs: number) => Promise<FrameSocket>;

/** As the reference: reconnect every 3 s, and 45 s without any frame is a lost primary. */
export const STANDBY_RETRY_MS = 3000;
export const STANDBY_READ_TIMEOUT_MS = 45_000;
const CONNECT_TIMEOUT_MS = 5000;

export interface ReplicationStandbyOptions {
  readonly primary: HostPort;
  readonly token: string;
  readonly store: RegistryStore;
  readonly liveness: Liveness;
  readonly log: Logger;
  now(): number;
  readonly connect?: PrimaryConnector;
  readonly retryMs?: number;
  readonly readTimeoutMs?: number;
}

const messageOf = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/**
 * The standby side of PROTOCOL.md §5.10: subscribes to the primary and replaces its own store
 * with every snapshot (one transaction each), so that it serves the replicated state and, once
 * restarted without `-standby`, carries on as the primary with it. Liveness is kept in memory:
 * a snapshot's `last_seen` only ever moves a node's time forward, and local heartbeats count too.
 */
export class ReplicationStandby {
  readonly #opts: ReplicationStandbyOptions;
  readonly #connect: PrimaryConnector;
  readonly #where: string;
  #socket: FrameSocket | undefined;
  #retry: NodeJS.Timeout | undefined;
  #readDeadline: NodeJS.Timeout | undefined;
  #stopped = false;
  /** True from the first snapshot of a connection until it is lost. */
  #replicating = false;
  /** The problem last logged at warn level, so that a primary that stays down is logged once. */
  #lastProblem: string | undefined;
  /** Why the current connection is ending (a refusal or a missed deadline), for the log. */
  #endReason: string | undefined;
  #applied = 0;
  #applying: Promise<void> = Promise.resolve();

  constructor(opts: ReplicationStandbyOptions) {
    this.#opts = opts;
    this.#connect = opts.connect ?? ((target, timeoutMs) => FrameSocket.connect(target, timeoutMs));
    this.#where = `${opts.primary.host}:${opts.primary.port}`;
    void this.#open();
  }

  /** Whether a snapshot arrived on the current connection. */
  get replicating(): boolean {
    return this.#replicating;
  }

  /** Snapshots applied since start. */
  get snapshotsApplied(): number {
    return this.#applied;
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#retry);
    clearTimeout(this.#readDeadline);
    this.#socket?.destroy();
    this.#socket = undefined;
  }

  async #open(): Promise<void> {
    let socket: FrameSocket;
    try {
      socket = await this.#connect(this.#opts.primary, CONNECT_TIMEOUT_MS);
    } catch (err) {
      this.#lost(messageOf(err));
      return;
    }
    if (this.#stopped) {
      socket.destroy();
      return;
    }
    this.#socket = socket;
    this.#endReason = undefined;
    socket.onFrame = (msg) => this.#onFrame(socket, msg);
    socket.onClose = (reason) => {
      if (this.#socket !== socket) return;
      this.#socket = undefined;
      clearTimeout(this.#readDeadline);
      this.#lost(this.#endReason ?? reason.message);
    };
    this.#armDeadline(socket);
    this.#opts.log.debug({ primary: this.#where }, 'connected to the primary, subscribing');
    try {
      socket.send({ type: 'subscribe_replication', token: this.#opts.token });
    } catch (err) {
      this.#endReason = messageOf(err);
      socket.destroy();
    }
  }

  #armDeadline(socket: FrameSocket): void {
    clearTimeout(this.#readDeadline);
    const timeoutMs = this.#opts.readTimeoutMs ?? STANDBY_READ_TIMEOUT_MS;
    this.#readDeadline = setTimeout(() => {
      this.#endReason = `no frame from the primary for ${timeoutMs / 1000} s`;
      socket.destroy();
    }, timeoutMs);
    this.#readDeadline.unref();
  }

  #onFrame(socket: FrameSocket, msg: JsonObject): void {
    this.#armDeadline(socket);
    if (msg.type === 'replication_snapshot') this.#apply(() => this.#applySnapshot(msg.snapshot));
    else if (msg.type === 'heartbeat') this.#apply(() => this.#applyLive(msg));
    else if (msg.type === 'error') {
      const reason = `primary: ${typeof msg.message === 'string' ? msg.message : String(msg.error)}`;
      // A refusal is followed by the close; a notice on an open stream (snapshot too large) is not.
      this.#endReason = reason;
      this.#problem(reason);
    } else {
      this.#opts.log.debug({ type: msg.type }, 'unexpected replication frame ignored');
    }
  }

  /** Frames are applied in the order they came, each after the previous one is in the store. */
  #apply(step: () => Promise<void>): void {
    this.#applying = this.#applying.then(step);
  }

  async #applySnapshot(value: unknown): Promise<void> {
    const now = this.#opts.now();
    try {
      const parsed = parseSnapshot(value, now);
      await this.#opts.store.replaceState(parsed.contents);
      this.#applyLastSeen(parsed.lastSeen, now);
      for (const node of parsed.contents.nodes) if (!node.registered) this.#opts.liveness.forget(node.id);
      await this.#applyBeacons(parsed.beacons);
      this.#applied++;
      this.#endReason = undefined;
      const nodes = parsed.contents.nodes.filter((n) => n.registered).length;
      if (!this.#replicating) {
        this.#replicating = true;
        this.#lastProblem = undefined;
        this.#opts.log.info({ primary: this.#where, nodes }, 'replicating from the primary: snapshot applied');
      } else {
        this.#opts.log.debug({ nodes }, 'snapshot applied');
      }
    } catch (err) {
      this.#problem(`snapshot from the primary not applied (the previous one stays): ${messageOf(err)}`);
    }
  }

  async #applyLive(msg: JsonObject): Promise<void> {
    const now = this.#opts.now();
    try {
      const live = parseLiveFields(msg, now);
      this.#applyLastSeen(live.lastSeen, now);
      await this.#applyBeacons(live.beacons);
    } catch (err) {
      this.#problem(`heartbeat from the primary not applied: ${messageOf(err)}`);
    }
  }

  /** Never beyond now (clock skew), never backwards (a local heartbeat may be newer). */
  #applyLastSeen(lastSeen: ReadonlyMap<number, number>, now: number): void {
    const { liveness } = this.#opts;
    for (const [id, at] of lastSeen) {
      const seen = Math.min(at, now);
      const local = liveness.lastSeen(id);
      if (local === undefined || seen > local) liveness.touch(id, seen);
    }
  }

  async #applyBeacons(beacons: readonly BeaconRecord[]): Promise<void> {
    for (const beacon of beacons) await this.#opts.store.upsertBeacon(beacon);
  }

  #problem(reason: string): void {
    if (reason === this.#lastProblem) {
      this.#opts.log.debug({ primary: this.#where, reason }, 'replication problem persists');
      return;
    }
    this.#lastProblem = reason;
    this.#opts.log.warn({ primary: this.#where, reason }, 'cannot replicate from the primary');
  }

  #lost(reason: string): void {
    if (this.#stopped) return;
    const retryMs = this.#opts.retryMs ?? STANDBY_RETRY_MS;
    if (this.#replicating) {
      this.#replicating = false;
      this.#lastProblem = reason;
      this.#opts.log.warn(
        { primary: this.#where, reason, retry_ms: retryMs },
        'lost the primary; serving the last snapshot and reconnecting',
      );
    } else {
      this.#problem(reason);
    }
    this.#retry = setTimeout(() => void this.#open(), retryMs);
    this.#retry.unref();
  }
}
