import { isIP } from 'node:net';
import { PilotError } from '../errors.js';

/** A UDP endpoint with its IP in canonical text form (IPv4-mapped IPv6 shown as dotted IPv4). */
export interface Endpoint {
  readonly ip: string;
  readonly port: number;
}

const V4_MAPPED = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i;

/**
 * Strips the IPv4-mapped prefix a dual-stack socket puts on IPv4 senders, and any IPv6 zone
 * (the beacon wire has no room for one).
 */
export function canonicalIp(ip: string): string {
  const bare = ip.split('%')[0] ?? ip;
  const m = V4_MAPPED.exec(bare);
  return m ? (m[1] as string) : bare.toLowerCase();
}

export function endpointKey(ep: Endpoint): string {
  return formatHostPort(ep.ip, ep.port);
}

export function sameEndpoint(a: Endpoint, b: Endpoint): boolean {
  return a.port === b.port && a.ip === b.ip;
}

/** `host:port`, with IPv6 literals in brackets. */
export function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

export interface HostPort {
  /** Empty when the address gave no host (`:9001`): listen on every interface. */
  readonly host: string;
  readonly port: number;
}

/** Parses Go-style `host:port`, `[v6]:port` or `:port`. */
export function parseHostPort(text: string): HostPort {
  const m = /^(?:\[([^\]]*)\]|([^:[\]]*)):(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port >= 0 && port <= 0xffff)) {
    throw new PilotError(
      'invalid_argument',
      `invalid address ${JSON.stringify(text)}`,
      'use host:port, [ipv6]:port or :port',
    );
  }
  const host = m[1] ?? m[2] ?? '';
  if (m[1] !== undefined && isIP(host) !== 6) {
    throw new PilotError('invalid_argument', `invalid IPv6 address in ${JSON.stringify(text)}`);
  }
  return { host, port };
}
