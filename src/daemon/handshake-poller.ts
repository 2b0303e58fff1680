import type { Logger } from '../log.js';

export interface HandshakePollerOptions {
  /** One `poll_handshakes` round (fetch and apply). */
  poll: () => Promise<void>;
  /** Whether the registry pushes notices (then polls follow the notices). */
  watching: () => boolean;
  /** Whether a handshake request of ours still awaits its answer. */
  awaiting: () => boolean;
  log: Logger;
  /** Poll period while a request awaits its answer without push; 1 s by default. */
  fastMs?: number;
  /** How long after the last request the fast period lasts; 2 minutes by default. */
  fastForMs?: number;
}

/**
 * When this node fetches relayed handshakes from the registry (PROTOCOL.md §6.2). A registry with
 * push (ours) says when; a Go registry does not, and a poll after each heartbeat alone would make
 * first trust take up to a keepalive period (30 s) per direction. So, without push, the node also
 * polls every second for a while after it sent a request, and before it lists pending requests.
 * Polls never overlap: a poll asked for while one runs reuses it.
 */
export class HandshakePoller {
  private running: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private fastUntil = 0;
  private stopped = false;
  private readonly fastMs: number;
  private readonly fastForMs: number;

  constructor(private readonly o: HandshakePollerOptions) {
    this.fastMs = o.fastMs ?? 1000;
    this.fastForMs = o.fastForMs ?? 120_000;
  }

  /** Polls now (or joins the poll under way); never rejects. */
  poll(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    this.running ??= this.o
      .poll()
      .catch((err: unknown) =>
        this.o.log.debug({ err: err instanceof Error ? err.message : String(err) }, 'poll_handshakes failed'),
      )
      .finally(() => (this.running = undefined));
    return this.running;
  }

  /**
   * Polls before a listing, push channel or not (a push channel can be dead without knowing it,
   * e.g. after the NAT in front of us rebound), and gives up waiting after `maxWaitMs`.
   */
  async refresh(maxWaitMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.poll(), new Promise<void>((resolve) => (timer = setTimeout(resolve, maxWaitMs)))]);
    clearTimeout(timer);
  }

  /** A request of ours went out: watch for the answer closely while no push channel exists. */
  requestSent(now = Date.now()): void {
    this.fastUntil = now + this.fastForMs;
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(): void {
    if (this.stopped || this.timer !== undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.o.watching() || !this.o.awaiting() || Date.now() >= this.fastUntil) return;
      void this.poll().then(() => this.schedule());
    }, this.fastMs);
    this.timer.unref();
  }
}
