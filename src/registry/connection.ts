import type { Socket } from 'node:net';
import type { JsonObject } from '../protocol/json.js';
import { encodeRegistryFrame, RegistryFrameSplitter } from '../protocol/registry-frame.js';
import type { RegistryState, RequestInfo } from './context.js';
import { errorReply, handleRequest, sortKeys } from './dispatch.js';
import type { KeyedRateLimiter } from '../rate-limit.js';
import { RequestError } from './request-error.js';
import type { RequestScheduler, Schedulable } from './request-scheduler.js';
import type { ConnectionSession } from './session-binding.js';
import { standbyRefusal } from './standby-gate.js';

/** Read deadline between requests (as the reference); push channels are exempt. */
export const IDLE_TIMEOUT_MS = 300_000;
/**
 * A new connection must deliver its first frame, and a frame once begun must be complete, within
 * this time: a client that trickles bytes cannot hold a connection for the idle timeout.
 */
export const FRAME_DEADLINE_MS = 10_000;
/** How long a refused client may take to read the error reply before the socket is dropped. */
const CLOSE_GRACE_MS = 2000;
/** Replies a client has not read yet; beyond this the server stops reading its requests. */
const MAX_PENDING_OUTPUT = 4 * 1024 * 1024;
/** Requests received but not answered yet; beyond this the server stops reading more. */
const MAX_QUEUED_REQUESTS = 64;
/**
 * After refusing requests over its source's rate, the connection is not read for this long: what
 * a flooding client sends meanwhile waits in its own socket buffers rather than costing the
 * registry a parse and a refusal each (a client within the rate never sees it).
 */
const REFUSED_HOLD_MS = 100;

type Frame = ReturnType<RegistryFrameSplitter['push']>[number];

export interface ConnectionHooks {
  readonly state: RegistryState;
  readonly requestLimiter: KeyedRateLimiter<string>;
  /** Shares request handling out among sources (request-scheduler.ts). */
  readonly scheduler: RequestScheduler;
  /** Handles `watch_handshakes`; resolves with the node id the connection now watches. */
  watch(conn: RegistryConnection, msg: JsonObject): Promise<number>;
  /** Handles `subscribe_replication` (sends the first snapshot); throws RequestError to refuse. */
  subscribe(conn: RegistryConnection, msg: JsonObject): void;
  closed(conn: RegistryConnection): void;
}

/**
 * One client TCP connection: strict request → one reply, in order (one request is handled at a
 * time; the next waits for the store's answer to the previous, and for its source's turn). A frame that cannot be decoded
 * (not a JSON object, length over 1 MiB) gets an error reply and ends this connection only.
 */
export class RegistryConnection implements Schedulable {
  readonly remoteIp: string;
  /** The socket's own peer address (remoteIp is normalised). */
  readonly remoteAddress: string;
  readonly remotePort: number;
  /** Node id once this connection became a handshake push channel. */
  watching: number | undefined;
  /** True once the connection became a replication stream to a standby. */
  replicating = false;
  /** `performance.now()` of the last complete request (or of the connection). */
  lastRequestAt = performance.now();
  /** Which node, if any, proved its key on this connection (session heartbeats). */
  readonly session: ConnectionSession = {};
  readonly #splitter = new RegistryFrameSplitter();
  #frameTimer: NodeJS.Timeout | undefined;
  readonly #queue: Frame[] = [];
  /** The encoded rate-limit refusal (the same bytes every time). */
  #limitedFrame: Uint8Array | undefined;
  /** A token of the request limit was taken for the request at the head of the queue. */
  #admitted = false;
  /** Handed to the scheduler, or a request of it in progress. */
  #scheduled = false;
  /** A malformed frame was received: nothing after it is read. */
  #malformed = false;
  /** Not read again before this time (`performance.now()`), after refusals over the rate. */
  #heldUntil = 0;

  constructor(
    readonly socket: Socket,
    remoteIp: string,
    private readonly hooks: ConnectionHooks,
    frameDeadlineMs = FRAME_DEADLINE_MS,
  ) {
    this.remoteIp = remoteIp;
    this.remoteAddress = socket.remoteAddress ?? '';
    this.remotePort = socket.remotePort ?? 0;
    socket.setNoDelay(true);
    socket.setTimeout(IDLE_TIMEOUT_MS, () => socket.destroy());
    socket.on('data', (chunk: Buffer) => {
      this.#onData(chunk);
      this.#watchFrame(frameDeadlineMs);
    });
    socket.on('drain', () => this.#maybeResume());
    socket.on('error', (err) => hooks.state.log.debug({ ip: remoteIp, err: err.message }, 'registry connection error'));
    socket.on('close', () => {
      clearTimeout(this.#frameTimer);
      hooks.closed(this);
    });
    this.#armFrameTimer(frameDeadlineMs, 'no request');
  }

  /** Idle between requests (no partial frame) and not a push or replication channel: the first to go when the server is full. */
  get evictable(): boolean {
    return (
      this.watching === undefined &&
      !this.replicating &&
      this.#splitter.buffered === 0 &&
      this.#frameTimer === undefined &&
      this.#queue.length === 0 &&
      !this.#scheduled
    );
  }

  /** A frame left incomplete must be finished in time; the timer stops once nothing is pending. */
  #watchFrame(deadlineMs: number): void {
    if (this.#splitter.buffered === 0) {
      clearTimeout(this.#frameTimer);
      this.#frameTimer = undefined;
    } else if (this.#frameTimer === undefined) {
      this.#armFrameTimer(deadlineMs, 'incomplete frame');
    }
  }

  #armFrameTimer(deadlineMs: number, what: string): void {
    this.#frameTimer = setTimeout(() => {
      this.hooks.state.log.debug(
        { ip: this.remoteIp, what },
        `registry connection closed: ${what} within ${deadlineMs} ms`,
      );
      this.socket.destroy();
    }, deadlineMs);
    this.#frameTimer.unref();
  }

  send(msg: JsonObject): void {
    if (this.socket.destroyed || !this.socket.writable) return;
    let frame: Uint8Array;
    try {
      frame = encodeRegistryFrame(sortKeys(msg) as JsonObject);
    } catch (err) {
      this.hooks.state.log.error({ err, type: msg.type }, 'reply too large');
      frame = encodeRegistryFrame(errorReply('internal', 'reply exceeds the 1 MiB frame limit'));
    }
    this.socket.write(frame);
    if (this.socket.writableLength > MAX_PENDING_OUTPUT) this.socket.pause();
  }

  #maybeResume(): void {
    if (performance.now() < this.#heldUntil) return;
    if (this.socket.writableLength <= MAX_PENDING_OUTPUT && this.#queue.length < MAX_QUEUED_REQUESTS)
      this.socket.resume();
  }

  close(): void {
    this.socket.destroy();
  }

  #onData(chunk: Buffer): void {
    if (this.#malformed) return;
    for (const result of this.#splitter.push(chunk)) {
      this.#queue.push(result);
      if (!result.ok) {
        this.#malformed = true;
        break;
      }
    }
    if (this.#queue.length >= MAX_QUEUED_REQUESTS) this.socket.pause();
    if (!this.#scheduled && this.#queue.length > 0) {
      this.#scheduled = true;
      this.hooks.scheduler.ready(this);
    }
  }

  /** The scheduler's turn: handles the next queued request; true when another one waits. */
  async runNext(): Promise<boolean> {
    const result = this.#queue.shift();
    if (result === undefined || this.socket.destroyed) {
      this.#queue.length = 0;
      this.#scheduled = false;
      return false;
    }
    if (!result.ok) {
      this.hooks.state.log.debug({ ip: this.remoteIp, err: result.error.message }, 'malformed registry frame');
      this.send(errorReply('protocol', `malformed frame: ${result.error.message}; closing the connection`));
      this.#queue.length = 0;
      this.#scheduled = false;
      this.#endSoon();
      return false;
    }
    // A push channel only carries notifications out; anything the client sends is ignored.
    if (this.watching === undefined && !this.replicating) {
      this.lastRequestAt = performance.now();
      if (!this.#admit()) {
        this.#refuseOverLimit();
        return this.#continue();
      }
      try {
        const reply = await this.#reply(result.value);
        if (reply !== undefined) this.send(reply);
      } catch (err) {
        this.hooks.state.log.error({ err }, 'registry request failed');
      }
      this.#maybeResume();
    }
    return this.#continue();
  }

  /** After a turn: whether another request waits (the scheduler then keeps the connection). */
  #continue(): boolean {
    const more = this.#queue.length > 0 && !this.socket.destroyed;
    this.#scheduled = more;
    if (!more) this.#queue.length = 0;
    return more;
  }

  /** Takes a token for the next request of this source, unless one was taken for it already. */
  #admit(): boolean {
    if (this.#admitted) {
      this.#admitted = false;
      return true;
    }
    return this.hooks.requestLimiter.take(this.remoteIp, this.hooks.state.now());
  }

  /**
   * Refuses the request over the source's rate, and with it every queued request that is over it
   * too, in one write and one turn, then stops reading the connection for REFUSED_HOLD_MS: a
   * flooding source costs a frame parse per request it gets read and little else, and gets no
   * more turns for it. What was read is answered at once, in order.
   */
  #refuseOverLimit(): void {
    this.#limitedFrame ??= encodeRegistryFrame(
      sortKeys(errorReply('rate_limited', `too many requests from ${this.remoteIp}; slow down`)) as JsonObject,
    );
    let count = 1;
    const now = this.hooks.state.now();
    while (this.#queue[0]?.ok === true) {
      if (this.hooks.requestLimiter.take(this.remoteIp, now)) {
        this.#admitted = true;
        break;
      }
      this.#queue.shift();
      count++;
    }
    if (this.socket.destroyed || !this.socket.writable) return;
    this.socket.write(count === 1 ? this.#limitedFrame : Buffer.concat(Array(count).fill(this.#limitedFrame)));
    this.#heldUntil = performance.now() + REFUSED_HOLD_MS;
    this.socket.pause();
    setTimeout(() => this.#maybeResume(), REFUSED_HOLD_MS + 1).unref();
  }

  /** Lets the client read what was sent, then drops the connection. */
  #endSoon(): void {
    this.socket.end();
    setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS).unref();
  }

  /** Undefined when the connection became a replication stream (its first snapshot is the answer). */
  async #reply(msg: JsonObject): Promise<JsonObject | undefined> {
    const { state } = this.hooks;
    const refusal = standbyRefusal(state, msg);
    if (refusal !== undefined) return refusal;
    if (msg.type === 'subscribe_replication') return this.#subscribe(msg);
    if (msg.type !== 'watch_handshakes') {
      const req: RequestInfo = { msg, remoteIp: this.remoteIp, remotePort: this.remotePort, session: this.session };
      return handleRequest(state, req);
    }
    try {
      const nodeId = await this.hooks.watch(this, msg);
      this.watching = nodeId;
      this.socket.setTimeout(0);
      this.socket.setKeepAlive(true, 30_000);
      return { type: 'watch_handshakes_ok' };
    } catch (err) {
      if (err instanceof RequestError) return errorReply(err.code, err.message);
      state.log.error({ err }, 'watch_handshakes failed');
      return errorReply('internal', 'internal error while handling "watch_handshakes"');
    }
  }

  /** A refused subscription gets the error reply and the connection ends, as in the reference. */
  #subscribe(msg: JsonObject): undefined {
    try {
      this.hooks.subscribe(this, msg);
      this.replicating = true;
      this.socket.setTimeout(0);
      this.socket.setKeepAlive(true, 30_000);
    } catch (err) {
      if (err instanceof RequestError) {
        this.hooks.state.log.warn({ ip: this.remoteIp, err: err.message }, 'replication subscription refused');
        this.send(errorReply(err.code, err.message));
      } else {
        this.hooks.state.log.error({ err }, 'subscribe_replication failed');
        this.send(errorReply('internal', 'internal error while handling "subscribe_replication"'));
      }
      this.#endSoon();
    }
    return undefined;
  }
}
