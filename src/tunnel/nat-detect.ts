import { randomInt } from 'node:crypto';
import { networkInterfaces } from 'node:os';
import {
  natType,
  type NatFiltering,
  type NatMapping,
  type NatProbeEndpoint,
  type NatProbeReply,
  type NatType,
} from '../protocol/nat-probe.js';
import { formatEndpoint, makeEndpoint, type UdpEndpoint } from './endpoint.js';

/** What a detection needs of the tunnel: NAT probes and the endpoint the beacon last reported. */
export interface NatProber {
  readonly observed: string | undefined;
  /**
   * Sends a NAT probe with `token` to `to` (default the beacon); replies, from whichever beacon
   * socket, go to `onReply` until the returned function is called.
   */
  natProbe(token: number, onReply: (reply: NatProbeReply, from: UdpEndpoint) => void, to?: UdpEndpoint): () => void;
}

export interface NatReport {
  readonly type: NatType;
  readonly mapping: NatMapping;
  readonly filtering: NatFiltering;
  /** Our endpoint as the beacon saw it ('' when it did not answer). */
  readonly publicEndpoint: string;
  /** When the detection ran (ms since the epoch). */
  readonly checkedAt: number;
}

const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    t.unref();
  });

function localAddresses(): Set<string> {
  const out = new Set<string>();
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) out.add(a.address);
  return out;
}

/** Sends one probe (twice, in case one is lost) and gathers the replies for `ms`. */
async function probe(client: NatProber, to: UdpEndpoint | undefined, ms: number): Promise<NatProbeReply[]> {
  const replies: NatProbeReply[] = [];
  const token = randomInt(1, 0xffffffff);
  const cancel = client.natProbe(token, (r) => replies.push(r), to);
  await sleep(ms / 3);
  if (replies.length === 0) client.natProbe(token, (r) => replies.push(r), to);
  await sleep((ms * 2) / 3);
  cancel();
  return replies;
}

const sameEp = (a: NatProbeEndpoint | undefined, b: NatProbeEndpoint | undefined): boolean =>
  a !== undefined && b !== undefined && a.ip === b.ip && a.port === b.port;

/**
 * Mapping and filtering of the NAT in front of our socket (RFC 4787 terms, RFC 5780's method on
 * the beacon's sockets):
 * 1. a probe to the beacon; it answers from its main socket, its other port and its other address.
 *    Which answers get through is the filtering: from the other address too, endpoint-independent;
 *    from the other port only, address-dependent; from the main socket only, address-and-port-dependent.
 * 2. probes to the other port and address (only now, or they would have opened the filter early):
 *    if they see us at another port than the main socket did, the mapping is endpoint-dependent.
 * An observed endpoint that is one of our own addresses and port means no NAT at all.
 */
export async function detectNat(
  client: NatProber,
  beacon: UdpEndpoint | undefined,
  localPort: number,
  timeoutMs: number,
): Promise<NatReport> {
  const checkedAt = Date.now();
  const unknown: NatReport = {
    type: 'unknown',
    mapping: 'unknown',
    filtering: 'unknown',
    publicEndpoint: client.observed ?? '',
    checkedAt,
  };
  if (!beacon) return unknown;
  const first = await probe(client, undefined, timeoutMs);
  const main = first.find((r) => r.source === 0);
  if (!main) return unknown;
  const publicEndpoint = formatEndpoint({ host: main.observed.ip, port: main.observed.port });
  if (main.observed.port === localPort && localAddresses().has(main.observed.ip)) {
    return { type: 'none', mapping: 'none', filtering: 'none', publicEndpoint, checkedAt };
  }
  let filtering: NatFiltering = 'unknown';
  if (first.some((r) => r.source === 2)) filtering = 'endpoint-independent';
  else if (main.otherAddress && first.some((r) => r.source === 1)) filtering = 'address-dependent';
  else if (main.otherPort) filtering = first.some((r) => r.source === 1) ? 'unknown' : 'address-and-port-dependent';
  // Our beacon address with the other port: same IP, so any difference is the NAT's doing.
  const targets = [main.otherPort && { ...main.otherPort, ip: beacon.host }, main.otherAddress].filter(
    (t): t is NatProbeEndpoint => !!t,
  );
  const seen: NatProbeEndpoint[] = [];
  await Promise.all(
    targets.map(async (t) => {
      const to = makeEndpoint(t.ip, t.port);
      if (!to) return;
      const replies = await probe(client, to, timeoutMs);
      for (const r of replies) seen.push(r.observed);
    }),
  );
  let mapping: NatMapping = 'unknown';
  if (seen.length > 0)
    mapping = seen.every((ep) => sameEp(ep, main.observed)) ? 'endpoint-independent' : 'endpoint-dependent';
  return { type: natType(mapping, filtering), mapping, filtering, publicEndpoint, checkedAt };
}
