import { joinHostPort, splitHostPort } from '../protocol/host-port.js';

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
