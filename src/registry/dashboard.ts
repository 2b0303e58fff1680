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
import { DASHBOARD_CSP, DASHBOARD_HTML } from './dashboard-page.js';
import { splitHostPort } from './endpoint.js';
import type { RegistryStats } from './stats.js';

/** What the dashboard reads from the registry (`RegistryServer` provides both). */
export interface DashboardSource {
  stats(): RegistryStats;
  requestCounts(): ReadonlyMap<string, number>;
}

export interface DashboardOptions {
  /** Interface to bind; every interface when empty. */
  readonly host: string;
  /** 0 = ephemeral; `Dashboard.port` tells the bound one. */
  readonly port: number;
  readonly source: DashboardSource;
  readonly log?: Logger;
  /** Clock in ms for the stats cache (tests). */
  readonly now?: () => number;
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
  #value: RegistryStats | undefined;
  #computedAt = 0;

  constructor(
    private readonly source: DashboardSource,
    private readonly now: () => number,
  ) {}

  get(): RegistryStats {
    const now = this.now();
    if (this.#value === undefined || now - this.#computedAt >= STATS_TTL_MS || now < this.#computedAt) {
      this.#value = this.source.stats();
      this.#computedAt = now;
    }
    return this.#value;
  }
}

function pathOf(url: string | undefined): string | undefined {
  try {
    return new URL(url ?? '', 'http://dashboard.invalid').pathname;
  } catch {
    return undefined;
  }
}

function route(req: IncomingMessage, stats: StatsCache, source: DashboardSource): Reply {
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
  if (path === '/api/stats') {
    return {
      status: 200,
      headers: { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', 'Access-Control-Allow-Origin': '*' },
      body: JSON.stringify(stats.get()),
    };
  }
  const badge = path?.startsWith('/api/badge/') ? BADGES.get(path.slice('/api/badge/'.length)) : undefined;
  if (badge !== undefined) {
    return {
      status: 200,
      headers: {
        'Content-Type': 'image/svg+xml',
        'Cache-Control': 'public, max-age=10',
        'Access-Control-Allow-Origin': '*',
      },
      body: renderBadge(badge(stats.get())),
    };
  }
  if (path === '/metrics') {
    if (!isLocalRequest(req)) return text(403, 'forbidden: /metrics is served to loopback clients only');
    return {
      status: 200,
      headers: { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8', 'Cache-Control': 'no-store' },
      body: renderMetrics(stats.get(), source.requestCounts()),
    };
  }
  return text(404, 'not found');
}

/** Request bodies are never read; a request that has one ends its connection after the reply. */
const hasBody = (req: IncomingMessage): boolean =>
  req.headers['transfer-encoding'] !== undefined ||
  (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0');

function respond(
  req: IncomingMessage,
  res: ServerResponse,
  stats: StatsCache,
  source: DashboardSource,
  log: Logger,
): void {
  let reply: Reply;
  try {
    if (req.method !== 'GET' && req.method !== 'HEAD') reply = text(405, 'method not allowed', { Allow: 'GET, HEAD' });
    else reply = route(req, stats, source);
  } catch (err) {
    log.error({ err, url: req.url?.slice(0, 200) }, 'dashboard request failed');
    reply = text(500, 'internal error');
  }
  const headers: OutgoingHttpHeaders = {
    ...COMMON_HEADERS,
    ...reply.headers,
    'Content-Length': Buffer.byteLength(reply.body),
  };
  if (hasBody(req)) headers.Connection = 'close';
  res.writeHead(reply.status, headers);
  res.end(reply.body);
}

/**
 * The registry's HTTP dashboard (`-http`, PROTOCOL.md §5.11) on `node:http`: `/`, `/api/stats`,
 * `/api/badge/*` and loopback-only `/metrics`. Bounded in connections, header size and time.
 */
export async function startDashboard(opts: DashboardOptions): Promise<Dashboard> {
  const log = opts.log ?? silentLogger();
  const stats = new StatsCache(opts.source, opts.now ?? Date.now);
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
      respond(req, res, stats, opts.source, log);
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
  const port = (server.address() as AddressInfo).port;
  log.info({ host: opts.host, port }, 'dashboard listening');
  let closing: Promise<void> | undefined;
  return {
    port,
    close: () =>
      (closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      })),
  };
}
