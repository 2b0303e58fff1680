import { request as httpRequest, type ClientRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { PilotError } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import { rfc3339Nano } from '../protocol/go-time.js';
import type { WebhookEvent } from '../webhook-sink.js';

export interface WebhookOptions {
  url?: string;
  /** Own node ID at the time of each event (0 before registration). */
  nodeId?: () => number;
  log?: Logger;
  timeoutMs?: number;
  queueLimit?: number;
  /** Clock for the `timestamp` field (injectable for tests). */
  now?: () => Date;
  /** Sees every event, posted or not (the daemon logs them). */
  observe?: (event: WebhookEvent, data: Record<string, unknown> | undefined) => void;
}

interface Pending {
  readonly url: URL;
  readonly body: string;
  readonly event: WebhookEvent;
}

/** Go encodes maps with their keys sorted; nested plain objects are maps too. */
function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value === null || typeof value !== 'object' || Object.getPrototypeOf(value) !== Object.prototype) return value;
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value).sort()) out[key] = sortKeys((value as Record<string, unknown>)[key]);
  return out;
}

export function encodeWebhookBody(
  event: WebhookEvent,
  nodeId: number,
  timestamp: Date,
  data?: Record<string, unknown>,
): string {
  const body: Record<string, unknown> = { event, node_id: nodeId, timestamp: rfc3339Nano(timestamp) };
  if (data !== undefined) body.data = sortKeys(data);
  return JSON.stringify(body);
}

function parseWebhookUrl(url: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new PilotError(
      'invalid_argument',
      `invalid webhook URL ${JSON.stringify(url)}`,
      'use an http:// or https:// URL',
    );
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new PilotError(
      'invalid_argument',
      `webhook URL must be http or https, got ${parsed.protocol}`,
      'use an http:// or https:// URL',
    );
  }
  return parsed;
}

/**
 * Posts daemon events to a URL as JSON (PROTOCOL.md §12). `emit` never blocks: events wait in a
 * bounded queue (newer events are dropped when it is full) and are posted one at a time, in order,
 * with no retries. Each event goes to the URL set when it was emitted, so a hot swap applies to
 * every later event from every part of the daemon.
 */
export class WebhookDispatcher {
  private url: URL | undefined;
  private readonly queue: Pending[] = [];
  private readonly nodeId: () => number;
  private readonly log: Logger;
  private readonly timeoutMs: number;
  private readonly queueLimit: number;
  private readonly now: () => Date;
  private readonly observe: WebhookOptions['observe'];
  private inFlight: ClientRequest | undefined;
  private worker: Promise<void> = Promise.resolve();
  private running = false;
  private closing = false;
  private droppedCount = 0;
  private deliveredCount = 0;
  private failedCount = 0;

  constructor(opts: WebhookOptions = {}) {
    this.nodeId = opts.nodeId ?? (() => 0);
    this.log = opts.log ?? silentLogger();
    this.timeoutMs = opts.timeoutMs ?? 5000;
    this.queueLimit = opts.queueLimit ?? 1024;
    this.now = opts.now ?? (() => new Date());
    this.observe = opts.observe;
    this.setUrl(opts.url);
  }

  get dropped(): number {
    return this.droppedCount;
  }

  get delivered(): number {
    return this.deliveredCount;
  }

  /** Posts that failed (network error, timeout or status ≥ 400); never retried. */
  get failed(): number {
    return this.failedCount;
  }

  /** Events queued and not yet finished (including the one being posted). */
  get pending(): number {
    return this.queue.length + (this.inFlight ? 1 : 0);
  }

  /** Sets or clears (undefined / empty) the URL; throws invalid_argument unless http(s). */
  setUrl(url: string | undefined): void {
    this.url = url === undefined || url === '' ? undefined : parseWebhookUrl(url);
  }

  getUrl(): string | undefined {
    return this.url?.href;
  }

  emit(event: WebhookEvent, data?: Record<string, unknown>): void {
    this.observe?.(event, data);
    const url = this.url;
    if (!url || this.closing) return;
    if (this.queue.length >= this.queueLimit) {
      this.droppedCount++;
      this.log.debug({ event }, 'webhook queue full, event dropped');
      return;
    }
    let body: string;
    try {
      body = encodeWebhookBody(event, this.nodeId(), this.now(), data);
    } catch (err) {
      this.droppedCount++;
      this.log.warn({ event, err }, 'webhook event not serialisable');
      return;
    }
    this.queue.push({ url, body, event });
    if (!this.running) {
      this.running = true;
      this.worker = this.drain();
    }
  }

  /**
   * Stops taking events, lets queued ones go out for up to `graceMs` (the request timeout by
   * default), then aborts the request in flight (counted as failed) and drops the rest.
   */
  async close(graceMs: number = this.timeoutMs): Promise<void> {
    this.closing = true;
    if (!this.running) return;
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, graceMs);
    });
    await Promise.race([this.worker, expired]);
    clearTimeout(timer);
    if (this.running) {
      this.droppedCount += this.queue.length;
      this.queue.length = 0;
      this.inFlight?.destroy(new Error('webhook dispatcher closed'));
      await this.worker;
    }
  }

  private async drain(): Promise<void> {
    // Yield first so that emit() returns before any I/O starts.
    await Promise.resolve();
    try {
      for (let next = this.queue.shift(); next; next = this.queue.shift()) {
        if (await this.post(next)) this.deliveredCount++;
        else this.failedCount++;
      }
    } finally {
      this.running = false;
    }
  }

  private post(p: Pending): Promise<boolean> {
    return new Promise((resolve) => {
      const options: RequestOptions = {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(p.body) },
      };
      const send = p.url.protocol === 'https:' ? httpsRequest : httpRequest;
      let settled = false;
      let timer: NodeJS.Timeout | undefined;
      const finish = (ok: boolean, detail?: Record<string, unknown>): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.inFlight = undefined;
        if (!ok) this.log.warn({ event: p.event, url: p.url.origin, ...detail }, 'webhook delivery failed');
        resolve(ok);
      };
      let req: ClientRequest;
      try {
        req = send(p.url, options, (res: IncomingMessage) => {
          // The status is all that matters; the body is read only to free the connection.
          res.resume();
          res.on('error', () => undefined);
          const bodyTimer = setTimeout(() => req.destroy(), this.timeoutMs);
          res.once('close', () => clearTimeout(bodyTimer));
          const status = res.statusCode ?? 0;
          finish(status < 400, { status });
        });
      } catch (err) {
        finish(false, { err: err instanceof Error ? err.message : String(err) });
        return;
      }
      timer = setTimeout(() => req.destroy(new Error(`timed out after ${this.timeoutMs} ms`)), this.timeoutMs);
      this.inFlight = req;
      req.once('error', (err) => finish(false, { err: err.message }));
      req.once('close', () => finish(false, { err: 'connection closed' }));
      req.end(p.body);
    });
  }
}
