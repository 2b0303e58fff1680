import type { Identity } from '../crypto/identity.js';
import { PilotError, type PilotErrorCode } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import type { JsonObject } from '../protocol/json.js';
import { challenge } from '../protocol/registry-frame.js';
import { FrameSocket, parseRegistryAddress, type HostPort, type RegistryPin } from './frame-socket.js';
import {
  FEATURE_SESSION_HEARTBEAT,
  FEATURE_SIGNED_BODY,
  FEATURE_WATCH_HANDSHAKES,
  registryFeatures,
} from '../protocol/registry-auth.js';
import { HandshakeWatch } from './client-watch.js';
import { signBody, signStatic } from './request-signer.js';
import { sleep } from './sleep.js';
import { normalizeFingerprint } from './tls-pin.js';

export interface RegistryClientOptions {
  /** `host:port` of the registry. */
  address: string;
  /** Needed for `register` and every signed request. */
  identity?: Identity;
  log?: Logger;
  /** Per request, including reconnecting; 10 s by default. */
  timeoutMs?: number;
  /** TLS to a registry started with `-tls`, pinned to its certificate's SHA-256 (hex). */
  tls?: { fingerprint: string };
}

/** Reconnection as PROTOCOL.md §5.1: a few dials with doubling back-off, then the request is retried once. */
const DIAL_ATTEMPTS = 5;
const DIAL_TIMEOUT_MS = 5000;
const BACKOFF_START_MS = 500;
const BACKOFF_MAX_MS = 10_000;

const REPLY_CODES: Readonly<Record<string, PilotErrorCode>> = {
  invalid_argument: 'invalid_argument',
  not_found: 'not_found',
  already_exists: 'already_exists',
  untrusted: 'untrusted',
  rate_limited: 'rate_limited',
  offline: 'unavailable',
  unknown_type: 'protocol',
  protocol: 'protocol',
  internal: 'internal',
};

/** Throws the PilotError an error reply stands for (a Go registry sends only `error`). */
export function checkReply(reply: JsonObject): JsonObject {
  if (typeof reply.error !== 'string') return reply;
  const code = typeof reply.code === 'string' ? (REPLY_CODES[reply.code] ?? 'refused') : 'refused';
  const message = typeof reply.message === 'string' ? reply.message : `registry: ${reply.error}`;
  throw new PilotError(code, message);
}

interface Waiter {
  resolve(msg: JsonObject): void;
  reject(err: PilotError): void;
}

/**
 * Client of the registry: one persistent connection, requests serialised, every request bounded
 * by a timeout. `register` is always sent with a signed body (a Go registry ignores the extra
 * fields); later requests are signed over their body when the registry's `register_ok` lists
 * that feature, and with the reference's static challenges otherwise (a Go registry).
 */
export class RegistryClient {
  nodeId: number | undefined;
  readonly #target: HostPort;
  readonly #pin: RegistryPin | undefined;
  readonly #identity: Identity | undefined;
  readonly #log: Logger;
  readonly #timeoutMs: number;
  #socket: FrameSocket | undefined;
  #waiter: Waiter | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #closed = false;
  readonly #watches = new Set<HandshakeWatch>();
  /** What `register_ok` announced; undefined until this client registered (then signed bodies are assumed). */
  #features: Set<string> | undefined;
  /** The connection on which this node proved its key with a signed body (session heartbeats). */
  #bound: FrameSocket | undefined;
  /** Logged once when the registry becomes unreachable, and again when it answers. */
  #outage = false;

  constructor(opts: RegistryClientOptions) {
    this.#target = parseRegistryAddress(opts.address);
    this.#pin = opts.tls === undefined ? undefined : { fingerprint: normalizeFingerprint(opts.tls.fingerprint) };
    this.#identity = opts.identity;
    this.#log = opts.log ?? silentLogger();
    this.#timeoutMs = opts.timeoutMs ?? 10_000;
  }

  /** Sends one message and returns the reply verbatim; error replies throw PilotError. */
  request(msg: JsonObject, opts: { signal?: AbortSignal } = {}): Promise<JsonObject> {
    return this.#enqueue(() => msg, opts.signal);
  }

  async register(p: { listenAddr: string; owner?: string; hostname?: string }): Promise<JsonObject> {
    const identity = this.#requireIdentity();
    const key = identity.publicKeyBase64;
    const reply = await this.#enqueue(
      () => {
        const msg: JsonObject = { type: 'register', listen_addr: p.listenAddr, public_key: key };
        if (p.owner !== undefined && p.owner !== '') msg.owner = p.owner;
        if (p.hostname !== undefined && p.hostname !== '') msg.hostname = p.hostname;
        return signBody(identity, msg);
      },
      undefined,
      true,
    );
    if (typeof reply.node_id === 'number') this.nodeId = reply.node_id;
    this.#features = registryFeatures(reply);
    return reply;
  }

  /**
   * Whether the registry verifies signed bodies (replay-proof); false for a Go registry. A client
   * that was given its node id without registering assumes a pilot-ts registry.
   */
  get signsBody(): boolean {
    return this.#features?.has(FEATURE_SIGNED_BODY) ?? true;
  }

  /** Whether the registry pushes handshake notices (`watchHandshakes`); false for a Go registry. */
  get canWatchHandshakes(): boolean {
    return this.#features?.has(FEATURE_WATCH_HANDSHAKES) ?? true;
  }

  lookup(nodeId: number): Promise<JsonObject> {
    return this.request({ type: 'lookup', node_id: nodeId });
  }

  resolve(nodeId: number): Promise<JsonObject> {
    return this.#signed(
      (s) => challenge.resolve(s, nodeId),
      (s) => ({ type: 'resolve', node_id: nodeId, requester_id: s }),
    );
  }

  resolveHostname(hostname: string): Promise<JsonObject> {
    return this.request({ type: 'resolve_hostname', hostname });
  }

  /**
   * Signed, or unsigned where the registry offers session heartbeats and this connection already
   * carried a signed body of this node; an unsigned one refused (a new registry process behind the
   * same address, say) is sent again signed.
   */
  async heartbeat(): Promise<JsonObject> {
    const identity = this.#requireIdentity();
    const self = this.#self();
    let unsigned = false;
    const build = (socket: FrameSocket): JsonObject => {
      unsigned = socket === this.#bound && this.#features?.has(FEATURE_SESSION_HEARTBEAT) === true;
      const fields: JsonObject = { type: 'heartbeat', node_id: self };
      if (unsigned) return fields;
      return this.signsBody ? signBody(identity, fields) : signStatic(identity, fields, challenge.heartbeat(self));
    };
    try {
      return await this.#enqueue(build, undefined, true);
    } catch (err) {
      if (!unsigned || !(err instanceof PilotError) || err.code !== 'refused') throw err;
      this.#bound = undefined;
      return this.#enqueue(build, undefined, true);
    }
  }

  async deregister(): Promise<JsonObject> {
    const reply = await this.#signed(challenge.deregister, (s) => ({ type: 'deregister', node_id: s }));
    this.nodeId = undefined;
    return reply;
  }

  setHostname(hostname: string): Promise<JsonObject> {
    return this.#signed(challenge.setHostname, (s) => ({ type: 'set_hostname', node_id: s, hostname }));
  }

  setVisibility(isPublic: boolean): Promise<JsonObject> {
    return this.#signed(challenge.setVisibility, (s) => ({ type: 'set_visibility', node_id: s, public: isPublic }));
  }

  setTags(tags: string[]): Promise<JsonObject> {
    return this.#signed(challenge.setTags, (s) => ({ type: 'set_tags', node_id: s, tags }));
  }

  setTaskExec(enabled: boolean): Promise<JsonObject> {
    return this.#signed(challenge.setTaskExec, (s) => ({ type: 'set_task_exec', node_id: s, enabled }));
  }

  reportTrust(peerId: number): Promise<JsonObject> {
    return this.#signed(
      (s) => challenge.reportTrust(s, peerId),
      (s) => ({ type: 'report_trust', node_id: s, peer_id: peerId }),
    );
  }

  revokeTrust(peerId: number): Promise<JsonObject> {
    return this.#signed(
      (s) => challenge.revokeTrust(s, peerId),
      (s) => ({ type: 'revoke_trust', node_id: s, peer_id: peerId }),
    );
  }

  requestHandshake(peerId: number, justification: string): Promise<JsonObject> {
    return this.#signed(
      (s) => challenge.requestHandshake(s, peerId),
      (s) => ({ type: 'request_handshake', from_node_id: s, to_node_id: peerId, justification }),
    );
  }

  pollHandshakes(): Promise<JsonObject> {
    return this.#signed(challenge.pollHandshakes, (s) => ({ type: 'poll_handshakes', node_id: s }));
  }

  respondHandshake(peerId: number, accept: boolean): Promise<JsonObject> {
    return this.#signed(
      (s) => challenge.respondHandshake(s, peerId),
      (s) => ({ type: 'respond_handshake', node_id: s, peer_id: peerId, accept }),
    );
  }

  getPoloScore(nodeId: number): Promise<JsonObject> {
    return this.request({ type: 'get_polo_score', node_id: nodeId });
  }

  /** A task completion receipt signed by submitter and executor; the registry applies each task id once. */
  taskReceipt(fields: JsonObject): Promise<JsonObject> {
    return this.request({ ...fields, type: 'task_receipt' });
  }

  /** The executor's signed acceptance of a task, so the registry can time it (pilot-ts registries only). */
  taskAccept(fields: JsonObject): Promise<JsonObject> {
    return this.request({ ...fields, type: 'task_accept' });
  }

  /** Evidence that an accepted task expired at the executor (its acceptance + the submitter's statement). */
  taskExpiry(fields: JsonObject): Promise<JsonObject> {
    return this.request({ ...fields, type: 'task_expiry' });
  }

  listNodes(networkId = 0): Promise<JsonObject> {
    return this.request({ type: 'list_nodes', network_id: networkId });
  }

  /**
   * Opens a second connection on which the registry pushes `handshake_notify` whenever a request
   * or response reaches this node's inbox; `onNotify` should then call `pollHandshakes`. It
   * reconnects with back-off and also fires after every reconnection (notifications may have been
   * missed meanwhile). Only for a registry that lists the feature (`canWatchHandshakes`).
   */
  watchHandshakes(onNotify: () => void): { stop(): void } {
    const identity = this.#requireIdentity();
    const nodeId = this.#self();
    if (!this.canWatchHandshakes)
      throw new PilotError('unavailable', 'the registry does not push handshake notices', 'poll_handshakes instead');
    const watch = new HandshakeWatch({
      target: this.#target,
      ...(this.#pin !== undefined ? { pin: this.#pin } : {}),
      log: this.#log,
      message: () => signBody(identity, { type: 'watch_handshakes', node_id: nodeId }),
      onNotify,
      onStop: () => this.#watches.delete(watch),
    });
    this.#watches.add(watch);
    return { stop: () => watch.stop() };
  }

  close(): void {
    this.#closed = true;
    this.#socket?.destroy();
    this.#socket = undefined;
    for (const watch of [...this.#watches]) watch.stop();
  }

  #throwIfClosed(): void {
    if (this.#closed) throw new PilotError('connection_failed', 'registry client is closed');
  }

  #requireIdentity(): Identity {
    if (this.#identity === undefined)
      throw new PilotError('invalid_argument', 'this registry request needs the node identity');
    return this.#identity;
  }

  #self(): number {
    if (this.nodeId === undefined)
      throw new PilotError('invalid_argument', 'not registered with the registry', 'register first');
    return this.nodeId;
  }

  /**
   * A request signed by this node: over its body, or over the static challenge `text` for a
   * registry that only knows those. The message is built (and signed) again for the retry after
   * a reconnection, since the registry accepts each signed body only once.
   */
  async #signed(text: (self: number) => string, fields: (self: number) => JsonObject): Promise<JsonObject> {
    const identity = this.#requireIdentity();
    const self = this.#self();
    return this.#enqueue(
      () => (this.signsBody ? signBody(identity, fields(self)) : signStatic(identity, fields(self), text(self))),
      undefined,
      true,
    );
  }

  /** `proves`: a successful reply means the registry took the request as this node's proof of its key. */
  #enqueue(build: (socket: FrameSocket) => JsonObject, signal?: AbortSignal, proves = false): Promise<JsonObject> {
    const run = this.#queue.then(() => this.#exchange(build, signal, proves));
    this.#queue = run.catch(() => undefined);
    return run.then(checkReply);
  }

  async #exchange(
    build: (socket: FrameSocket) => JsonObject,
    signal: AbortSignal | undefined,
    proves: boolean,
  ): Promise<JsonObject> {
    this.#throwIfClosed();
    const deadline = Date.now() + this.#timeoutMs;
    for (let attempt = 0; ; attempt++) {
      signal?.throwIfAborted();
      try {
        const socket = await this.#connect(deadline, signal);
        const msg = build(socket);
        const reply = await this.#roundTrip(socket, msg, deadline, signal);
        if (proves && this.signsBody && typeof reply.error !== 'string') this.#bound = socket;
        return reply;
      } catch (err) {
        this.#socket?.destroy();
        this.#socket = undefined;
        const retry = attempt < 1 && err instanceof PilotError && err.code === 'connection_failed' && !this.#closed;
        if (!retry) throw err;
        this.#log.debug({ err: err.message }, 'registry request failed, retrying once');
      }
    }
  }

  async #connect(deadline: number, signal: AbortSignal | undefined): Promise<FrameSocket> {
    if (this.#socket?.alive) return this.#socket;
    let backoff = BACKOFF_START_MS;
    let lastError: PilotError | undefined;
    for (let attempt = 0; attempt < DIAL_ATTEMPTS; attempt++) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      try {
        this.#throwIfClosed();
        const socket = await FrameSocket.connect(this.#target, Math.min(DIAL_TIMEOUT_MS, left), this.#pin);
        // Closed (or aborted) while dialling: the new connection must not outlive the client.
        if (this.#closed || signal?.aborted) {
          socket.destroy();
          this.#throwIfClosed();
          signal?.throwIfAborted();
        }
        if (this.#outage) {
          this.#outage = false;
          this.#log.info({ registry: `${this.#target.host}:${this.#target.port}` }, 'registry reachable again');
        }
        socket.onFrame = (reply) => this.#deliver(reply);
        socket.onClose = (reason) => {
          if (this.#socket === socket) this.#socket = undefined;
          this.#fail(reason);
        };
        this.#socket = socket;
        return socket;
      } catch (err) {
        // A wrong certificate or a registry that does not speak TLS: dialling again cannot help.
        if (err instanceof PilotError && (err.code === 'refused' || err.code === 'protocol')) throw err;
        if (this.#closed || signal?.aborted) throw err;
        lastError = err instanceof PilotError ? err : new PilotError('connection_failed', String(err));
      }
      if (attempt + 1 < DIAL_ATTEMPTS) {
        await sleep(Math.min(backoff, Math.max(0, deadline - Date.now())), signal);
        backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
      }
    }
    if (!this.#outage && !this.#closed) {
      this.#outage = true;
      this.#log.warn(
        { registry: `${this.#target.host}:${this.#target.port}`, err: lastError?.message },
        'registry unreachable',
      );
    }
    throw new PilotError(
      'connection_failed',
      lastError?.message ?? `cannot reach the registry at ${this.#target.host}:${this.#target.port}`,
    );
  }

  #roundTrip(
    socket: FrameSocket,
    msg: JsonObject,
    deadline: number,
    signal: AbortSignal | undefined,
  ): Promise<JsonObject> {
    return new Promise<JsonObject>((resolve, reject) => {
      const cleanup = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.#waiter = undefined;
      };
      const onAbort = (): void => {
        cleanup();
        // The reply may still arrive; the connection can no longer be matched to requests.
        socket.destroy();
        reject(signal?.reason instanceof Error ? signal.reason : new PilotError('timeout', 'registry request aborted'));
      };
      const timer = setTimeout(
        () => {
          cleanup();
          socket.destroy();
          reject(
            new PilotError('timeout', `registry did not answer "${String(msg.type)}" within ${this.#timeoutMs} ms`),
          );
        },
        Math.max(0, deadline - Date.now()),
      );
      this.#waiter = {
        resolve: (reply) => {
          cleanup();
          resolve(reply);
        },
        reject: (err) => {
          cleanup();
          reject(err);
        },
      };
      if (signal?.aborted) {
        onAbort();
        return;
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      try {
        socket.send(msg);
      } catch (err) {
        this.#waiter.reject(err instanceof PilotError ? err : new PilotError('internal', String(err)));
      }
    });
  }

  #deliver(reply: JsonObject): void {
    const waiter = this.#waiter;
    if (waiter === undefined) {
      this.#log.warn({ type: reply.type }, 'unexpected registry message dropped');
      return;
    }
    waiter.resolve(reply);
  }

  #fail(reason: PilotError): void {
    this.#waiter?.reject(reason);
  }
}
