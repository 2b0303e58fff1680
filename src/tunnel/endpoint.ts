import { isIP } from 'node:net';
import { PilotError } from '../errors.js';
import { joinHostPort, splitHostPort, unmapIpv4 } from '../protocol/host-port.js';

/** A UDP address with an IP literal host (never a hostname). */
export interface UdpEndpoint {
  readonly host: string;
  readonly port: number;
  readonly family: 4 | 6;
}

export interface ListenAddress {
  /** IP literal to bind; `0.0.0.0` when the host part is empty. */
  readonly host: string;
  readonly port: number;
  readonly family: 4 | 6;
}

/** 127.0.0.0/8 or ::1 (hosts are normalised, so an IPv4-mapped loopback shows as 127.x). */
export function isLoopbackHost(host: string): boolean {
  return host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));
}

export function makeEndpoint(ip: string, port: number): UdpEndpoint | undefined {
  const host = unmapIpv4(ip);
  const family = isIP(host);
  if (family === 0 || host.includes('%') || !Number.isInteger(port) || port < 0 || port > 0xffff) return undefined;
  return { host, port, family: family === 4 ? 4 : 6 };
}

/** Parses an `ip:port` / `[ip]:port` peer endpoint (IP literals only). */
export function parseEndpoint(text: string): UdpEndpoint | undefined {
  const parts = splitHostPort(text);
  if (!parts || parts.port === 0) return undefined;
  return makeEndpoint(parts.host, parts.port);
}

export function formatEndpoint(ep: { host: string; port: number }): string {
  return joinHostPort(ep.host, ep.port);
}

export function endpointEquals(a: UdpEndpoint | undefined, b: UdpEndpoint | undefined): boolean {
  return a !== undefined && b !== undefined && a.port === b.port && a.host === b.host;
}

/** `:0`, `0.0.0.0:4000`, `127.0.0.1:0`, `[::1]:0`, `[::]:0`, `localhost:0`. */
export function parseListenAddress(text: string): ListenAddress {
  const parts = splitHostPort(text);
  if (!parts)
    throw new PilotError(
      'invalid_argument',
      `invalid listen address "${text}"`,
      'use host:port, for example :4000 or [::1]:0',
    );
  const host = parts.host === '' ? '0.0.0.0' : parts.host === 'localhost' ? '127.0.0.1' : parts.host;
  const family = isIP(host);
  if (family === 0) throw new PilotError('invalid_argument', `listen host must be an IP address: "${parts.host}"`);
  return { host, port: parts.port, family: family === 4 ? 4 : 6 };
}
