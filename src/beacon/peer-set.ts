import { isIP } from 'node:net';
import { PilotError } from '../errors.js';
import type { JsonObject } from '../protocol/json.js';
import { canonicalIp, endpointKey, parseHostPort, type Endpoint } from './endpoint.js';
import { joinHostPort, type HostPort } from '../protocol/host-port.js';

/**
 * Pure rules of beacon peer discovery (PROTOCOL.md §4 "Peer discovery"): what this beacon
 * registers, which `beacon_list` entries become gossip peers.
 */

/** Entries of one `beacon_list` beyond this many are ignored. */
export const MAX_DISCOVERED_BEACONS = 256;
/** The registry stores at most this many characters of `addr`. */
export const MAX_BEACON_ADDR_LENGTH = 256;

export interface ListedBeacon {
  readonly id: number;
  /** An IP literal or a host name still to resolve. */
  readonly host: string;
  readonly port: number;
}

export interface BeaconListResult {
  readonly beacons: ListedBeacon[];
  /** Why entries were left out, for debug logs. */
  readonly skipped: string[];
}

const isU32 = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff;
const isUnspecifiedV6 = (ip: string): boolean => isIP(ip) === 6 && ip.split(':').every((group) => /^0*$/.test(group));
const HOST_NAME = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\.?$/i;

/**
 * Reads the `host:port` a beacon registered: a non-empty host (IP literal or DNS name) and a
 * non-zero port. Undefined when it is anything else.
 */
export function parseBeaconAddr(addr: string): HostPort | undefined {
  if (addr.length === 0 || addr.length > MAX_BEACON_ADDR_LENGTH) return undefined;
  let parsed: HostPort;
  try {
    parsed = parseHostPort(addr);
  } catch {
    return undefined;
  }
  if (parsed.port === 0 || parsed.host === '') return undefined;
  if (isIP(parsed.host) === 0 && !HOST_NAME.test(parsed.host)) return undefined;
  return parsed;
}

/** The other beacons a `beacon_list_ok` reply names; this beacon's own id is left out. */
export function parseBeaconList(reply: JsonObject, selfId: number, max = MAX_DISCOVERED_BEACONS): BeaconListResult {
  const list = reply.beacons;
  if (list === null || list === undefined) return { beacons: [], skipped: [] };
  if (!Array.isArray(list)) throw new PilotError('protocol', 'beacon_list reply has no beacons array');
  const beacons: ListedBeacon[] = [];
  const skipped: string[] = [];
  const seen = new Set<number>();
  for (const [index, entry] of list.entries()) {
    // Bounded work per reply however long the list: its own entry plus `max` others at most.
    if (index > max || beacons.length >= max) {
      skipped.push(`${list.length - index} entries beyond the first ${index}`);
      break;
    }
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
      skipped.push('an entry that is not an object');
      continue;
    }
    const { id, addr } = entry;
    if (!isU32(id) || id === 0) {
      skipped.push(`an entry with id ${JSON.stringify(id)}`);
      continue;
    }
    if (id === selfId || seen.has(id)) continue;
    const parsed = typeof addr === 'string' ? parseBeaconAddr(addr) : undefined;
    if (!parsed) {
      skipped.push(`beacon ${id} with address ${JSON.stringify(addr)?.slice(0, 80)}`);
      continue;
    }
    seen.add(id);
    beacons.push({ id, host: parsed.host, port: parsed.port });
  }
  return { beacons, skipped };
}

/**
 * Whether datagrams may be sent to this IP at all: not the unspecified address, not multicast
 * or broadcast (a registration must not turn gossip into a flood of a whole segment), and IPv4
 * only when the beacon's socket is IPv4.
 */
export function usablePeerIp(ip: string, v4Only: boolean): boolean {
  const canonical = canonicalIp(ip);
  const family = isIP(canonical);
  if (family === 4) {
    const first = Number(canonical.split('.')[0]);
    return first !== 0 && first < 224;
  }
  if (family !== 6 || v4Only) return false;
  return !isUnspecifiedV6(canonical) && !canonical.startsWith('ff');
}

/** Usable, distinct endpoints other than this beacon's own. */
export function discoveredPeerSet(
  resolved: readonly Endpoint[],
  self: Endpoint | undefined,
  v4Only: boolean,
): Endpoint[] {
  const keys = new Set<string>(self ? [endpointKey(self)] : []);
  const peers: Endpoint[] = [];
  for (const ep of resolved) {
    const canonical = { ip: canonicalIp(ep.ip), port: ep.port };
    const key = endpointKey(canonical);
    if (canonical.port === 0 || keys.has(key) || !usablePeerIp(canonical.ip, v4Only)) continue;
    keys.add(key);
    peers.push(canonical);
  }
  return peers;
}

/** An empty host or the unspecified address: listening on every interface. */
export const isWildcardHost = (host: string): boolean => host === '' || host === '0.0.0.0' || isUnspecifiedV6(host);

/**
 * The address to register when none was configured: the bound IP when the beacon listens on one
 * interface, else the local IP of the connection to the registry (the interface that routes to
 * it) with the beacon's port. Undefined when neither gives one.
 */
export function derivedAdvertiseAddr(
  boundHost: string,
  port: number,
  registryLocalIp: string | undefined,
): string | undefined {
  if (!isWildcardHost(boundHost) && isIP(canonicalIp(boundHost)) !== 0)
    return joinHostPort(canonicalIp(boundHost), port);
  if (registryLocalIp === undefined || isIP(canonicalIp(registryLocalIp)) === 0) return undefined;
  return joinHostPort(canonicalIp(registryLocalIp), port);
}

/** The endpoint an advertised address stands for, when it is an IP literal. */
export function advertisedEndpoint(addr: string | undefined): Endpoint | undefined {
  const parsed = addr === undefined ? undefined : parseBeaconAddr(addr);
  if (!parsed || isIP(parsed.host) === 0) return undefined;
  return { ip: canonicalIp(parsed.host), port: parsed.port };
}
