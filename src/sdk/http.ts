import { Agent, type AgentOptions, type ClientRequestArgs, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { PilotError } from '../errors.js';
import { parseAddr, type Addr } from '../protocol/address.js';
import type { JsonObject } from '../protocol/json.js';
import type { DialOptions, PilotConn, PilotListener, PilotNetwork } from '../pilot-net.js';
import { OpeningStream } from './opening-stream.js';
import { toAddr } from './validate.js';

/**
 * Serves an `http.Server` (or https/http2 server taking plain sockets) on a pilot port: every
 * accepted connection is handed to the server as if it came from `server.listen()`. The listener
 * closes with the server.
 */
export async function serveHttp(
  network: Pick<PilotNetwork, 'listen'>,
  port: number,
  server: Server,
): Promise<PilotListener> {
  const listener = await network.listen(port);
  listener.on('connection', (conn) => server.emit('connection', conn));
  server.once('close', () => void listener.close());
  return listener;
}

/** What the HTTP client side needs: dialing, and optionally hostname resolution through the daemon. */
export interface HttpDialer {
  dial(addr: Addr | string, port: number, options?: DialOptions): Promise<PilotConn>;
  resolveHostname?(name: string): Promise<JsonObject>;
}

export interface PilotHttpTarget {
  /** Overrides the request's `host` (a pilot address, or a hostname the daemon resolves). */
  addr?: Addr | string;
  /** Overrides the request's `port` (default 80). */
  port?: number;
  dialTimeoutMs?: number;
}

export type CreateConnection = (
  options: ClientRequestArgs,
  oncreate: (err: Error | null, socket: Duplex) => void,
) => Duplex;

/**
 * A `createConnection` for `http.request`: the request's `host` is a pilot address such as
 * `0:0000.0000.0002` (or a registered hostname) and its `port` the pilot port.
 *
 *   http.request({ host: '0:0000.0000.0002', port: 80, path: '/', createConnection: createConnection(driver) })
 *
 * The stream is handed out at once, still connecting (as `net.connect()` does), so the request's
 * head and a short body go with the dial: to a pilot-ts peer they ride in the SYN, and the response
 * starts one round trip after the dial instead of two.
 */
export function createConnection(dialer: HttpDialer, fixed: PilotHttpTarget = {}): CreateConnection {
  return (options) => new OpeningStream((first) => connectFor(dialer, fixed, options, first));
}

/** An `http.Agent` whose sockets are pilot connections (keep-alive pooling works as usual). */
export class PilotAgent extends Agent {
  private readonly connect: CreateConnection;

  constructor(dialer: HttpDialer, options: AgentOptions & PilotHttpTarget = {}) {
    super(options);
    const { addr, port, dialTimeoutMs } = options;
    this.connect = createConnection(dialer, {
      ...(addr === undefined ? {} : { addr }),
      ...(port === undefined ? {} : { port }),
      ...(dialTimeoutMs === undefined ? {} : { dialTimeoutMs }),
    });
  }

  override createConnection(
    options: ClientRequestArgs,
    callback?: (err: Error | null, stream: Duplex) => void,
  ): Duplex | null | undefined {
    return this.connect(options, callback ?? (() => undefined));
  }
}

async function connectFor(
  dialer: HttpDialer,
  fixed: PilotHttpTarget,
  options: ClientRequestArgs,
  first: Uint8Array | undefined,
): Promise<PilotConn> {
  const host = fixed.addr ?? options.host ?? options.hostname ?? undefined;
  if (host === undefined || host === null)
    throw new PilotError('invalid_argument', 'http request over pilot needs a host (pilot address or hostname)');
  const addr = await resolveHost(dialer, host);
  const port = fixed.port ?? Number(options.port ?? options.defaultPort ?? 80);
  return dialer.dial(addr, port, {
    ...(fixed.dialTimeoutMs === undefined ? {} : { timeoutMs: fixed.dialTimeoutMs }),
    ...(first === undefined ? {} : { data: first }),
  });
}

async function resolveHost(dialer: HttpDialer, host: Addr | string): Promise<Addr> {
  if (typeof host !== 'string') return toAddr(host);
  // Node puts IPv6-looking hosts (anything with ':') in brackets in some code paths.
  const text = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  const parsed = parseAddr(text);
  if (parsed.ok) return parsed.value;
  if (!dialer.resolveHostname) throw new PilotError('invalid_argument', `not a pilot address: ${text}`);
  const reply = await dialer.resolveHostname(text);
  if (typeof reply.address !== 'string')
    throw new PilotError('not_found', `hostname ${text} did not resolve to an address`);
  return toAddr(reply.address);
}
