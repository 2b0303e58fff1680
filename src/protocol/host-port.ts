/** `host:port` text as Go's net.SplitHostPort / JoinHostPort read and write it. */

export interface HostPort {
  /** Empty for `:port` (every interface); an IPv6 literal without its brackets. */
  readonly host: string;
  readonly port: number;
}

/**
 * Splits `host:port`, `[v6]:port` or `:port` (port 0–65535); undefined on any syntax error,
 * including a bare IPv6 literal, whose colons need brackets.
 */
export function splitHostPort(text: string): HostPort | undefined {
  let host: string;
  let portText: string;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0 || text[close + 1] !== ':') return undefined;
    host = text.slice(1, close);
    portText = text.slice(close + 2);
  } else {
    const colon = text.lastIndexOf(':');
    if (colon < 0) return undefined;
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(':')) return undefined;
  }
  if (!/^[0-9]{1,5}$/.test(portText)) return undefined;
  const port = Number(portText);
  return port > 0xffff ? undefined : { host, port };
}

/** `host:port`, with an IPv6 literal in brackets. */
export function joinHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

const V4_MAPPED = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i;

/** `::ffff:1.2.3.4`, as a dual-stack socket reports an IPv4 peer, → `1.2.3.4`; anything else as it is. */
export function unmapIpv4(ip: string): string {
  return V4_MAPPED.exec(ip)?.[1] ?? ip;
}
