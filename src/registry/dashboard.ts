import {
  createServer,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type Server,
  type ServerResponse,
} from 'node:http';
import { isIP, type AddressInfo } from 'node:net';
import { PilotError, toPilotError } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import { BADGES, renderBadge } from './dashboard-badge.js';
import { isLocalRequest, renderMetrics } from './dashboard-metrics.js';
import { History } from './dashboard-history.js';
import { DASHBOARD_CSP, DASHBOARD_HTML } from './dashboard-page.js';
import { splitHostPort } from '../protocol/host-port.js';
import type { RegistryStats } from './stats.js';

/** What the dashboard reads from the registry (`RegistryServer` provides it all). */
export interface DashboardSource {
  /** May read every registered node: the dashboard caches it for a second. */
  stats(): RegistryStats | Promise<RegistryStats>;
  requestCounts(): ReadonlyMap<string, number>;
  /** Nodes online now; cheap (sampled for the history whether or not anyone looks). */
  onlineCount(): number;
  handshakesRelayed(): number;
}

/** `/api/stats`: the reference's fields, then ours. */
export type DashboardStats = RegistryStats & { handshakes_relayed: number };

export interface DashboardOptions {
  /** Interface to bind; every interface when empty. */
  readonly host: string;
  /** 0 = ephemeral; `Dashboard.port` tells the bound one. */
  readonly port: number;
  readonly source: DashboardSource;
  readonly log?: Logger;
  /** Clock in ms for the stats cache and the history (tests). */
  readonly now?: () => number;
  /** Time between two samples of the history (default 10 s). */
  readonly sampleIntervalMs?: number;
}

export interface Dashboard {
  readonly port: number;
  close(): Promise<void>;
}

const HOST_NAME = /^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/i;

/** Parses the `-http` flag: `host:port`, `[ipv6]:port`, or `:port` for every interface. */
export function parseDashboardAddress(text: string): { host: string; port: number } {
  const parsed = splitHostPort(text.trim());
  if (parsed === undefined || !(parsed.host === '' || isIP(parsed.host) !== 0 || HOST_NAME.test(parsed.host))) {
    throw new PilotError(
      'invalid_argument',
      `invalid -http address ${JSON.stringify(text)}`,
      'use host:port, e.g. 127.0.0.1:8080 (or :8080 for every interface)',
    );
  }
  return parsed;
}

/** Statistics read every registered node: at most one computation per second, whatever the load. */
const STATS_TTL_MS = 1000;
const SAMPLE_INTERVAL_MS = 10_000;
const MAX_CONNECTIONS = 64;
const MAX_HEADER_BYTES = 8 * 1024;
const HEADERS_TIMEOUT_MS = 5000;
const REQUEST_TIMEOUT_MS = 10_000;
const IDLE_TIMEOUT_MS = 30_000;
const KEEP_ALIVE_TIMEOUT_MS = 5000;

interface Reply {
  readonly status: number;
  readonly headers: OutgoingHttpHeaders;
  readonly body: string;
}

const COMMON_HEADERS: OutgoingHttpHeaders = { 'X-Content-Type-Options': 'nosniff', 'Referrer-Policy': 'no-referrer' };

const text = (status: number, body: string, headers: OutgoingHttpHeaders = {}): Reply => ({
  status,
  headers: { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store', ...headers },
  body: `${body}\n`,
});

class StatsCache {
  #value: Promise<DashboardStats> | undefined;
  #computedAt = 0;

  constructor(
    private readonly source: DashboardSource,
    private readonly now: () => number,
  ) {}

  /** Concurrent callers share one computation; a failed one is not kept. */
  get(): Promise<DashboardStats> {
    const now = this.now();
    if (this.#value === undefined || now - this.#computedAt >= STATS_TTL_MS || now < this.#computedAt) {
      const value = this.#compute();
      this.#value = value;
      this.#computedAt = now;
      value.catch(() => {
        if (this.#value === value) this.#value = undefined;
      });
    }
    return this.#value;
  }

  async #compute(): Promise<DashboardStats> {
    const stats = await this.source.stats();
    return { ...stats, handshakes_relayed: this.source.handshakesRelayed() };
  }
}

const json = (body: string): Reply => ({
  status: 200,
  headers: { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', 'Access-Control-Allow-Origin': '*' },
  body,
});

function pathOf(url: string | undefined): string | undefined {
  try {
    return new URL(url ?? '', 'http://dashboard.invalid').pathname;
  } catch {
    return undefined;
  }
}

interface Served {
  readonly stats: StatsCache;
  readonly source: DashboardSource;
  readonly history: History;
}

async function route(req: IncomingMessage, { stats, source, history }: Served): Promise<Reply> {
  const path = pathOf(req.url);
  if (path === '/') {
    return {
      status: 200,
      headers: {
        'Content-Type': 'text/html; charset=utf-8',
        'Cache-Control': 'no-store',
        'Content-Security-Policy': DASHBOARD_CSP,
      },
      body: DASHBOARD_HTML,
    };
  }
  if (path === '/api/stats') return json(JSON.stringify(await stats.get()));
  if (path === '/api/history') return json(history.text());
  // Browsers ask for it on every visit; no content rather than a 404 in the console.
  if (path === '/favicon.ico') return { status: 204, headers: { 'Cache-Control': 'public, max-age=86400' }, body: '' };
  const badge = path?.startsWith('/api/badge/') ? BADGES.get(path.slice('/api/badge/'.length)) : undefined;
  if (badge !== undefined) {
    return {
      status: 200,
      headers: {
        'Content-Type': 'image/svg+xml',
        'Cache-Control': 'public, max-age=10',
        'Access-Control-Allow-Origin': '*',
      },
      body: renderBadge(badge(await stats.get())),
    };
  }
  if (path === '/metrics') {
    if (!isLocalRequest(req)) return text(403, 'forbidden: /metrics is served to loopback clients only');
    const current = await stats.get();
    return {
      status: 200,
      headers: { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8', 'Cache-Control': 'no-store' },
      body: renderMetrics(current, source.requestCounts(), source.handshakesRelayed()),
    };
  }
  return text(404, 'not found');
}

/** Request bodies are never read; a request that has one ends its connection after the reply. */
const hasBody = (req: IncomingMessage): boolean =>
  req.headers['transfer-encoding'] !== undefined ||
  (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0');

async function respond(req: IncomingMessage, res: ServerResponse, served: Served, log: Logger): Promise<void> {
  let reply: Reply;
  try {
    if (req.method !== 'GET' && req.method !== 'HEAD') reply = text(405, 'method not allowed', { Allow: 'GET, HEAD' });
    else reply = await route(req, served);
  } catch (err) {
    log.error({ err, url: req.url?.slice(0, 200) }, 'dashboard request failed');
    reply = text(500, 'internal error');
  }
  const headers: OutgoingHttpHeaders = { ...COMMON_HEADERS, ...reply.headers };
  if (reply.status !== 204) headers['Content-Length'] = Buffer.byteLength(reply.body);
  if (hasBody(req)) headers.Connection = 'close';
  if (res.destroyed) return;
  res.writeHead(reply.status, headers);
  res.end(reply.body);
}

/** Records one sample now and one every interval until stopped. */
function startSampling(source: DashboardSource, history: History, now: () => number, log: Logger): () => void {
  const sample = (): void => {
    try {
      history.record({
        at: now(),
        online: source.onlineCount(),
        requests: source.requestCounts(),
        relayed: source.handshakesRelayed(),
      });
    } catch (err) {
      log.error({ err }, 'dashboard sample failed');
    }
  };
  sample();
  const timer = setInterval(sample, history.intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}

/**
 * The registry's HTTP dashboard (`-http`, PROTOCOL.md §5.11) on `node:http`: `/`, `/api/stats`,
 * `/api/history`, `/api/badge/*` and loopback-only `/metrics`. Bounded in connections, header
 * size and time.
 */
export async function startDashboard(opts: DashboardOptions): Promise<Dashboard> {
  const log = opts.log ?? silentLogger();
  const now = opts.now ?? Date.now;
  const history = new History(opts.sampleIntervalMs ?? SAMPLE_INTERVAL_MS);
  const served: Served = { stats: new StatsCache(opts.source, now), source: opts.source, history };
  const server: Server = createServer(
    {
      maxHeaderSize: MAX_HEADER_BYTES,
      headersTimeout: HEADERS_TIMEOUT_MS,
      requestTimeout: REQUEST_TIMEOUT_MS,
      keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
      connectionsCheckingInterval: 1000,
    },
    (req, res) => {
      req.on('error', () => undefined);
      res.on('error', (err) => log.debug({ err: err.message }, 'dashboard response error'));
      void respond(req, res, served, log);
    },
  );
  server.maxConnections = MAX_CONNECTIONS;
  server.timeout = IDLE_TIMEOUT_MS;
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: opts.host === '' ? undefined : opts.host, port: opts.port }, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    throw new PilotError(
      'unavailable',
      `dashboard cannot listen on ${opts.host}:${opts.port}: ${toPilotError(err).message}`,
      undefined,
      { cause: err },
    );
  }
  server.on('error', (err) => log.error({ err }, 'dashboard listener error'));
  const stopSampling = startSampling(opts.source, history, now, log);
  const port = (server.address() as AddressInfo).port;
  log.info({ host: opts.host, port }, 'dashboard listening');
  let closing: Promise<void> | undefined;
  return {
    port,
    close: () =>
      (closing ??= new Promise<void>((resolve) => {
        stopSampling();
        server.close(() => resolve());
        server.closeAllConnections();
      })),
  };
}
