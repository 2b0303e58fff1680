import { isIPv6 } from 'node:net';

/** `::ffff:1.2.3.4` (dual-stack sockets) → `1.2.3.4`. */
export function normalizeIp(ip: string): string {
  return ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
}

export function joinHostPort(host: string, port: number): string {
  return isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Splits `host:port` / `[v6]:port`; undefined when the port is missing or not a u16. */
export function splitHostPort(text: string): { host: string; port: number } | undefined {
  const colon = text.lastIndexOf(':');
  if (colon < 0) return undefined;
  const portText = text.slice(colon + 1);
  if (!/^\d{1,5}$/.test(portText)) return undefined;
  const port = Number(portText);
  if (port > 0xffff) return undefined;
  let host = text.slice(0, colon);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  return { host, port };
}

/**
 * The endpoint the registry stores for a node (as the reference): the TCP peer IP of the
 * registering connection plus the port of `listen_addr`, or the TCP source `ip:port` when
 * `listen_addr` has no usable port.
 */
export function observedEndpoint(remoteIp: string, remotePort: number, listenAddr: string): string {
  const parsed = splitHostPort(listenAddr);
  return joinHostPort(remoteIp, parsed?.port ?? remotePort);
}

export function endpointIp(endpoint: string): string | undefined {
  return splitHostPort(endpoint)?.host;
}
