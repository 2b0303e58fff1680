import { beaconProofText, decodeBeacon, encodeBeacon } from '../protocol/beacon.js';
import { encodePilp } from '../protocol/tunnel.js';
import { endpointEquals, formatEndpoint, makeEndpoint, type UdpEndpoint } from './endpoint.js';
import type { Wire } from './wire.js';

const PUNCH_COUNT = 3;
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
export class BeaconClient {
  readonly #waiters = new Set<(endpoint: string | undefined) => void>();
  #proofTimer: NodeJS.Timeout | undefined;
  /** When the beacon last confirmed our proof of id (0: never; a Go beacon never does). */
  provenAt = 0;

  constructor(
    private readonly wire: Wire,
    /** Signs with the node's Ed25519 identity key. */
    private readonly sign: (bytes: Uint8Array) => Uint8Array,
  ) {}

  /** Discover with node 0; resolves with the ip:port the beacon observed, or undefined. */
  discover(timeoutMs: number): Promise<string | undefined> {
    const beacon = this.wire.beacon;
    if (!beacon) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const send = (): void => this.wire.deliver(encodeBeacon({ type: 'Discover', nodeId: 0 }), beacon, 'beacon');
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
    this.wire.deliver(encodeBeacon({ type: 'Discover', nodeId }), beacon, 'beacon');
    if (nodeId === 0) return;
    clearTimeout(this.#proofTimer);
    const asked = Date.now();
    const ask = (attempt: number): void => {
      this.wire.deliver(encodeBeacon({ type: 'ProofRequest', nodeId }), beacon, 'beacon');
      if (attempt + 1 >= PROOF_ATTEMPTS) return;
      this.#proofTimer = setTimeout(() => {
        if (this.provenAt < asked) ask(attempt + 1);
      }, PROOF_RETRY_MS);
      this.#proofTimer.unref();
    };
    ask(0);
  }

  requestPunch(requester: number, target: number): void {
    if (this.wire.beacon) this.wire.deliver(encodeBeacon({ type: 'PunchRequest', requester, target }), this.wire.beacon, 'beacon');
  }

  /**
   * Handles a datagram whose first byte marks a beacon message. Only the configured beacon is
   * listened to: anyone else could otherwise aim our punches or fake relayed traffic.
   */
  receive(data: Uint8Array, from: UdpEndpoint): RelayedFrame | undefined {
    const beacon = this.wire.beacon;
    if (!beacon || !endpointEquals(from, beacon)) return void this.wire.drop('not_from_beacon', from);
    const decoded = decodeBeacon(data);
    if (!decoded.ok) return void this.wire.drop('malformed', from);
    const msg = decoded.value;
    switch (msg.type) {
      case 'DiscoverReply': {
        const endpoint = formatEndpoint({ host: msg.ip, port: msg.port });
        for (const done of [...this.#waiters]) done(endpoint);
        return undefined;
      }
      case 'PunchCommand': {
        const target = makeEndpoint(msg.ip, msg.port);
        if (!target || target.port === 0) return void this.wire.drop('malformed', from);
        for (let i = 0; i < PUNCH_COUNT; i++) this.wire.deliver(encodePilp(), target, 'PILP');
        return undefined;
      }
      case 'RelayDeliver':
        if (msg.frame.length < 4) return void this.wire.drop('malformed', from, msg.sender);
        return { sender: msg.sender, frame: msg.frame };
      case 'ProofChallenge': {
        const signature = this.sign(beaconProofText(msg.nodeId, msg.cookie));
        this.wire.deliver(encodeBeacon({ type: 'Proof', nodeId: msg.nodeId, cookie: msg.cookie, signature }), beacon, 'beacon');
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
    for (const done of [...this.#waiters]) done(undefined);
  }
}
