import { beaconProofText, decodeBeacon, encodeBeacon } from '../protocol/beacon.js';
import { decodeNatProbeReply, encodeNatProbe, NAT_PROBE_REPLY, type NatProbeReply } from '../protocol/nat-probe.js';
import { MAGIC_PILP } from '../protocol/tunnel.js';
import { endpointEquals, formatEndpoint, makeEndpoint, type UdpEndpoint } from './endpoint.js';
import { PUNCH_RETRY_MS } from './policy.js';
import type { Wire } from './wire.js';

const DISCOVER_RESEND_MS = 1000;
/** A proof not confirmed by then is asked for again (a beacon may first have to look our key up). */
const PROOF_RETRY_MS = 1500;
const PROOF_ATTEMPTS = 3;

/** A relayed tunnel frame handed back to the tunnel (beacon 0x06). */
export interface RelayedFrame {
  readonly sender: number;
  readonly frame: Uint8Array;
}

/** The daemon side of the beacon protocol (PROTOCOL.md §4), over the tunnel's own socket. */
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

export class BeaconClient {
  readonly #waiters = new Set<(endpoint: string | undefined) => void>();
  /** Outstanding NAT probes by token: replies may come from the beacon's other sockets. */
  readonly #probes = new Map<number, (reply: NatProbeReply, from: UdpEndpoint) => void>();
  readonly #punchTimers = new Set<NodeJS.Timeout>();
  #proofTimer: NodeJS.Timeout | undefined;
  /** When the beacon last confirmed our proof of id (0: never; a Go beacon never does). */
  provenAt = 0;
  /** When we last sent the beacon anything (keep-alives hold the NAT mapping towards it). */
  lastSentAt = 0;
  /** Our endpoint as the beacon last observed it. */
  observed: string | undefined;

  constructor(
    private readonly wire: Wire,
    /** Signs with the node's Ed25519 identity key. */
    private readonly sign: (bytes: Uint8Array) => Uint8Array,
    private readonly nodeId: () => number = () => 0,
    /** Called with every endpoint the beacon reports it saw us at, and the one it reported before. */
    private readonly onObserved: (endpoint: string, previous: string | undefined) => void = () => undefined,
  ) {}

  #toBeacon(bytes: Uint8Array, to?: UdpEndpoint): void {
    const beacon = to ?? this.wire.beacon;
    if (!beacon) return;
    this.lastSentAt = Date.now();
    this.wire.deliver(bytes, beacon, 'beacon');
  }

  /** Discover with our id only: holds the NAT mapping towards the beacon and shows our endpoint. */
  keepalive(nodeId: number): void {
    this.#toBeacon(encodeBeacon({ type: 'Discover', nodeId }));
  }

  /**
   * Sends a NAT probe with a fresh token to `to` (default the beacon); replies, from whichever
   * beacon socket, go to `onReply` until `cancel` is called.
   */
  natProbe(token: number, onReply: (reply: NatProbeReply, from: UdpEndpoint) => void, to?: UdpEndpoint): () => void {
    this.#probes.set(token, onReply);
    this.#toBeacon(encodeNatProbe(token), to);
    return () => this.#probes.delete(token);
  }

  /** Discover with node 0; resolves with the ip:port the beacon observed, or undefined. */
  discover(timeoutMs: number): Promise<string | undefined> {
    const beacon = this.wire.beacon;
    if (!beacon) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const send = (): void => this.#toBeacon(encodeBeacon({ type: 'Discover', nodeId: 0 }), beacon);
      const resend = setInterval(send, DISCOVER_RESEND_MS);
      const timeout = setTimeout(() => done(undefined), timeoutMs);
      const done = (endpoint: string | undefined): void => {
        clearInterval(resend);
        clearTimeout(timeout);
        this.#waiters.delete(done);
        resolve(endpoint);
      };
      this.#waiters.add(done);
      send();
    });
  }

  /**
   * Discover with our id, as the reference, then a proof of the id (pilot-ts extension, ignored by
   * a Go beacon), so that nobody else can claim it at the beacon.
   */
  register(nodeId: number): void {
    const beacon = this.wire.beacon;
    if (!beacon) return;
    this.#toBeacon(encodeBeacon({ type: 'Discover', nodeId }), beacon);
    if (nodeId === 0) return;
    clearTimeout(this.#proofTimer);
    const asked = Date.now();
    const ask = (attempt: number): void => {
      this.#toBeacon(encodeBeacon({ type: 'ProofRequest', nodeId }), beacon);
      if (attempt + 1 >= PROOF_ATTEMPTS) return;
      this.#proofTimer = setTimeout(() => {
        if (this.provenAt < asked) ask(attempt + 1);
      }, PROOF_RETRY_MS);
      this.#proofTimer.unref();
    };
    ask(0);
  }

  requestPunch(requester: number, target: number): void {
    this.#toBeacon(encodeBeacon({ type: 'PunchRequest', requester, target }));
  }

  /**
   * Handles a datagram whose first byte marks a beacon message. Only the configured beacon is
   * listened to: anyone else could otherwise aim our punches or fake relayed traffic.
   */
  receive(data: Uint8Array, from: UdpEndpoint): RelayedFrame | undefined {
    if (data[0] === NAT_PROBE_REPLY) {
      // Comes from any of the beacon's sockets: only a reply carrying a token we sent is taken.
      const reply = decodeNatProbeReply(data);
      const handler = reply.ok ? this.#probes.get(reply.value.token) : undefined;
      if (!reply.ok || !handler) return void this.wire.drop('unexpected_beacon_message', from);
      handler(reply.value, from);
      return undefined;
    }
    const beacon = this.wire.beacon;
    if (!beacon || !endpointEquals(from, beacon)) return void this.wire.drop('not_from_beacon', from);
    const decoded = decodeBeacon(data);
    if (!decoded.ok) return void this.wire.drop('malformed', from);
    const msg = decoded.value;
    switch (msg.type) {
      case 'DiscoverReply': {
        const endpoint = formatEndpoint({ host: msg.ip, port: msg.port });
        const previous = this.observed;
        this.observed = endpoint;
        this.onObserved(endpoint, previous);
        for (const done of [...this.#waiters]) done(endpoint);
        return undefined;
      }
      case 'PunchCommand': {
        const target = makeEndpoint(msg.ip, msg.port);
        if (!target || target.port === 0) return void this.wire.drop('malformed', from);
        // At once, then short retries: the peer punches towards us at the same moment, and the
        // first datagrams of either side may meet a NAT that has not opened yet.
        const pilp = encodePilpFrom(this.nodeId());
        this.wire.deliver(pilp, target, 'PILP');
        for (const ms of PUNCH_RETRY_MS) {
          const t = setTimeout(() => {
            this.#punchTimers.delete(t);
            this.wire.deliver(pilp, target, 'PILP');
          }, ms);
          t.unref();
          this.#punchTimers.add(t);
        }
        return undefined;
      }
      case 'RelayDeliver':
        if (msg.frame.length < 4) return void this.wire.drop('malformed', from, msg.sender);
        return { sender: msg.sender, frame: msg.frame };
      case 'ProofChallenge': {
        const signature = this.sign(beaconProofText(msg.nodeId, msg.cookie));
        this.#toBeacon(encodeBeacon({ type: 'Proof', nodeId: msg.nodeId, cookie: msg.cookie, signature }), beacon);
        return undefined;
      }
      case 'ProofOk':
        this.provenAt = Date.now();
        return undefined;
      default:
        return void this.wire.drop('unexpected_beacon_message', from);
    }
  }

  close(): void {
    clearTimeout(this.#proofTimer);
    for (const t of this.#punchTimers) clearTimeout(t);
    this.#punchTimers.clear();
    this.#probes.clear();
    for (const done of [...this.#waiters]) done(undefined);
  }
}
