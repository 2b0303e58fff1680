import { beaconProofText, decodeBeacon, encodeBeacon } from '../protocol/beacon.js';
import { decodeNatProbeReply, encodeNatProbe, NAT_PROBE_REPLY } from '../protocol/nat-probe.js';
import { MAGIC_PILP } from '../protocol/tunnel.js';
import { endpointEquals, formatEndpoint, makeEndpoint, type UdpEndpoint } from './endpoint.js';
import type { Outbox } from './outbox.js';
import { PUNCH_RETRY_MS } from './policy.js';

/** A proof not confirmed by then is asked for again (a beacon may first have to look our key up). */
const PROOF_RETRY_MS = 1500;
const PROOF_ATTEMPTS = 3;

/** A relayed tunnel frame handed back to the tunnel (beacon 0x06). */
export interface RelayedFrame {
  readonly sender: number;
  readonly frame: Uint8Array;
}

/**
 * PILP with our node id after the magic (the reference reads only the magic): the receiver can
 * answer a punch from a node it is trying to reach at once, at the address the punch came from.
 */
export function encodePilpFrom(nodeId: number): Uint8Array {
  const buf = Buffer.alloc(8);
  buf.set(MAGIC_PILP, 0);
  buf.writeUInt32BE(nodeId >>> 0, 4);
  return buf;
}

/**
 * The daemon side of the beacon protocol (PROTOCOL.md §4), without sockets or timers: what it
 * sends goes to the outbox, what it must do later is due at `nextTimeout()`.
 */
export class BeaconSession {
  /** Outstanding NAT probes by token: replies may come from the beacon's other sockets. */
  readonly #probes = new Set<number>();
  /** PILP retries after a punch command. */
  #punches: { at: number; to: UdpEndpoint; bytes: Uint8Array }[] = [];
  #proof: { nodeId: number; asked: number; attempt: number; at: number } | undefined;
  /** When the beacon last confirmed our proof of id (0: never; a Go beacon never does). */
  provenAt = 0;
  /** When we last sent the beacon anything (keep-alives hold the NAT mapping towards it). */
  lastSentAt = 0;
  /** Our endpoint as the beacon last observed it. */
  observed: string | undefined;

  constructor(
    private readonly out: Outbox,
    private readonly sign: (bytes: Uint8Array) => Uint8Array,
    private readonly nodeId: () => number,
    /** Called with every endpoint the beacon reports it saw us at, and the one it reported before. */
    private readonly onObserved: (endpoint: string, previous: string | undefined, now: number) => void,
  ) {}

  get beacon(): UdpEndpoint | undefined {
    return this.out.beacon;
  }

  #toBeacon(bytes: Uint8Array, now: number, to?: UdpEndpoint): void {
    const beacon = to ?? this.out.beacon;
    if (!beacon) return;
    this.lastSentAt = now;
    this.out.deliver(bytes, beacon, 'beacon');
  }

  /** Discover with our id only: holds the NAT mapping towards the beacon and shows our endpoint. */
  keepalive(nodeId: number, now: number): void {
    this.#toBeacon(encodeBeacon({ type: 'Discover', nodeId }), now);
  }

  /** Discover with node 0: the beacon answers with the ip:port it sees us at. */
  discover(now: number): void {
    this.#toBeacon(encodeBeacon({ type: 'Discover', nodeId: 0 }), now);
  }

  /** Sends a NAT probe with `token` to `to` (default the beacon); replies come out as events until cancelled. */
  natProbe(token: number, now: number, to?: UdpEndpoint): void {
    this.#probes.add(token);
    this.#toBeacon(encodeNatProbe(token), now, to);
  }

  cancelNatProbe(token: number): void {
    this.#probes.delete(token);
  }

  /**
   * Discover with our id, as the reference, then a proof of the id (pilot-ts extension, ignored by
   * a Go beacon), so that nobody else can claim it at the beacon.
   */
  register(nodeId: number, now: number): void {
    if (!this.out.beacon) return;
    this.#toBeacon(encodeBeacon({ type: 'Discover', nodeId }), now);
    this.#proof = undefined;
    if (nodeId === 0) return;
    this.#askProof({ nodeId, asked: now, attempt: 0, at: now }, now);
  }

  #askProof(proof: { nodeId: number; asked: number; attempt: number; at: number }, now: number): void {
    this.#toBeacon(encodeBeacon({ type: 'ProofRequest', nodeId: proof.nodeId }), now);
    this.#proof =
      proof.attempt + 1 < PROOF_ATTEMPTS
        ? { ...proof, attempt: proof.attempt + 1, at: now + PROOF_RETRY_MS }
        : undefined;
  }

  requestPunch(requester: number, target: number, now: number): void {
    this.#toBeacon(encodeBeacon({ type: 'PunchRequest', requester, target }), now);
  }

  nextTimeout(): number | undefined {
    let at = this.#proof?.at;
    for (const p of this.#punches) if (at === undefined || p.at < at) at = p.at;
    return at;
  }

  handleTimeout(now: number): void {
    const proof = this.#proof;
    if (proof && now >= proof.at) {
      if (this.provenAt < proof.asked) this.#askProof(proof, now);
      else this.#proof = undefined;
    }
    if (this.#punches.length === 0) return;
    const due = this.#punches.filter((p) => now >= p.at);
    this.#punches = this.#punches.filter((p) => now < p.at);
    for (const p of due) this.out.deliver(p.bytes, p.to, 'PILP');
  }

  /**
   * Handles a datagram whose first byte marks a beacon message. Only the configured beacon is
   * listened to: anyone else could otherwise aim our punches or fake relayed traffic.
   */
  receive(data: Uint8Array, from: UdpEndpoint, now: number): RelayedFrame | undefined {
    if (data[0] === NAT_PROBE_REPLY) {
      // Comes from any of the beacon's sockets: only a reply carrying a token we sent is taken.
      const reply = decodeNatProbeReply(data);
      if (!reply.ok || !this.#probes.has(reply.value.token))
        return void this.out.drop('unexpected_beacon_message', from);
      this.out.emit({ type: 'nat-probe-reply', token: reply.value.token, reply: reply.value, from });
      return undefined;
    }
    const beacon = this.out.beacon;
    if (!beacon || !endpointEquals(from, beacon)) return void this.out.drop('not_from_beacon', from);
    const decoded = decodeBeacon(data);
    if (!decoded.ok) return void this.out.drop('malformed', from);
    const msg = decoded.value;
    switch (msg.type) {
      case 'DiscoverReply': {
        const endpoint = formatEndpoint({ host: msg.ip, port: msg.port });
        const previous = this.observed;
        this.observed = endpoint;
        this.onObserved(endpoint, previous, now);
        return undefined;
      }
      case 'PunchCommand': {
        const target = makeEndpoint(msg.ip, msg.port);
        if (!target || target.port === 0) return void this.out.drop('malformed', from);
        // At once, then short retries: the peer punches towards us at the same moment, and the
        // first datagrams of either side may meet a NAT that has not opened yet.
        const pilp = encodePilpFrom(this.nodeId());
        this.out.deliver(pilp, target, 'PILP');
        for (const ms of PUNCH_RETRY_MS) this.#punches.push({ at: now + ms, to: target, bytes: pilp });
        return undefined;
      }
      case 'RelayDeliver':
        if (msg.frame.length < 4) return void this.out.drop('malformed', from, msg.sender);
        return { sender: msg.sender, frame: msg.frame };
      case 'ProofChallenge': {
        const signature = this.sign(beaconProofText(msg.nodeId, msg.cookie));
        this.#toBeacon(encodeBeacon({ type: 'Proof', nodeId: msg.nodeId, cookie: msg.cookie, signature }), now);
        return undefined;
      }
      case 'ProofOk':
        this.provenAt = now;
        return undefined;
      default:
        return void this.out.drop('unexpected_beacon_message', from);
    }
  }

  close(): void {
    this.#proof = undefined;
    this.#punches = [];
    this.#probes.clear();
  }
}
