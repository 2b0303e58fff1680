import type { Logger } from '../log.js';
import type { JsonObject } from '../protocol/json.js';
import { FrameSocket, type HostPort, type RegistryPin } from './frame-socket.js';

export interface HandshakeWatchOptions {
  readonly target: HostPort;
  /** TLS, pinned as the client's own connection. */
  readonly pin?: RegistryPin;
  readonly log: Logger;
  /** A freshly signed `watch_handshakes` message (a new timestamp for every connection). */
  message(): JsonObject;
  onNotify(): void;
  onStop(): void;
}

const BACKOFF_START_MS = 500;
const BACKOFF_MAX_MS = 10_000;
const CONNECT_TIMEOUT_MS = 5000;

/** The client end of the handshake push channel; keeps itself connected until stopped. */
export class HandshakeWatch {
  #socket: FrameSocket | undefined;
  #timer: NodeJS.Timeout | undefined;
  #backoff = BACKOFF_START_MS;
  #stopped = false;
  #everConfirmed = false;

  constructor(private readonly opts: HandshakeWatchOptions) {
    void this.#open();
  }

  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#socket?.destroy();
    this.#socket = undefined;
    this.opts.onStop();
  }

  async #open(): Promise<void> {
    let socket: FrameSocket;
    try {
      socket = await FrameSocket.connect(this.opts.target, CONNECT_TIMEOUT_MS, this.opts.pin);
    } catch (err) {
      this.#retry(err instanceof Error ? err.message : String(err));
      return;
    }
    if (this.#stopped) {
      socket.destroy();
      return;
    }
    this.#socket = socket;
    let confirmed = false;
    socket.onFrame = (msg) => {
      if (!confirmed) {
        if (msg.type !== 'watch_handshakes_ok') {
          const reason = typeof msg.message === 'string' ? msg.message : String(msg.error ?? msg.type);
          socket.destroy();
          this.opts.log.warn({ reason }, 'registry refused the handshake watch');
          return;
        }
        confirmed = true;
        this.#backoff = BACKOFF_START_MS;
        // Anything that arrived while the channel was down would otherwise wait for the next poll.
        if (this.#everConfirmed) this.#fire();
        this.#everConfirmed = true;
        return;
      }
      if (msg.type === 'handshake_notify') this.#fire();
    };
    socket.onClose = (reason) => {
      if (this.#socket === socket) this.#socket = undefined;
      this.#retry(reason.message);
    };
    try {
      socket.send(this.opts.message());
    } catch (err) {
      socket.destroy();
      this.opts.log.warn({ err }, 'cannot send the handshake watch request');
    }
  }

  #fire(): void {
    try {
      this.opts.onNotify();
    } catch (err) {
      this.opts.log.error({ err }, 'handshake notification callback failed');
    }
  }

  #retry(reason: string): void {
    if (this.#stopped) return;
    this.opts.log.debug({ reason, retry_ms: this.#backoff }, 'handshake watch disconnected');
    this.#timer = setTimeout(() => void this.#open(), this.#backoff);
    this.#timer.unref();
    this.#backoff = Math.min(this.#backoff * 2, BACKOFF_MAX_MS);
  }
}
