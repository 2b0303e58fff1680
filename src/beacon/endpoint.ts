import { isIP } from 'node:net';
import { PilotError } from '../errors.js';
import { type HostPort, joinHostPort, splitHostPort, unmapIpv4 } from '../protocol/host-port.js';

/** A UDP endpoint with its IP in canonical text form (IPv4-mapped IPv6 shown as dotted IPv4). */
export interface Endpoint {
  readonly ip: string;
  readonly port: number;
}

/**
 * Strips the IPv4-mapped prefix a dual-stack socket puts on IPv4 senders, and any IPv6 zone
 * (the beacon wire has no room for one).
 */
export function canonicalIp(ip: string): string {
  return unmapIpv4(ip.split('%')[0] ?? ip).toLowerCase();
}

export function endpointKey(ep: Endpoint): string {
  return joinHostPort(ep.ip, ep.port);
}

export function sameEndpoint(a: Endpoint, b: Endpoint): boolean {
  return a.port === b.port && a.ip === b.ip;
}

/** Parses Go-style `host:port`, `[v6]:port` or `:port`. */
export function parseHostPort(text: string): HostPort {
  const parts = splitHostPort(text.trim());
  if (!parts) {
    throw new PilotError(
      'invalid_argument',
      `invalid address ${JSON.stringify(text)}`,
      'use host:port, [ipv6]:port or :port',
    );
  }
  if (text.trim().startsWith('[') && isIP(parts.host) !== 6) {
    throw new PilotError('invalid_argument', `invalid IPv6 address in ${JSON.stringify(text)}`);
  }
  return parts;
}
