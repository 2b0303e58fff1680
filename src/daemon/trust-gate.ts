import { Flag, Proto, type Packet } from '../protocol/packet.js';
import { HANDSHAKE_PORT } from './trust.js';

export interface TrustGateOptions {
  isTrusted(node: number): boolean;
  /** Answers a refused connection attempt (the stack's reset with its cause). */
  refuse(packet: Packet): void;
}

/**
 * Trust, enforced on every packet from the tunnel: an untrusted node may open a connection only
 * to the handshake port, and its datagrams and pings are dropped.
 */
export class TrustGate {
  #refused = 0;

  constructor(private readonly o: TrustGateOptions) {}

  /** Packets refused or dropped because their sender is not trusted. */
  get refused(): number {
    return this.#refused;
  }

  /** Whether a packet from `from` may go on to the stack. */
  admit(p: Packet, from: number): boolean {
    if (this.o.isTrusted(from)) return true;
    if (p.protocol !== Proto.Stream) {
      this.#refused++;
      return false;
    }
    const synOnly = (p.flags & (Flag.SYN | Flag.ACK | Flag.RST)) === Flag.SYN;
    if (synOnly && p.dstPort !== HANDSHAKE_PORT) {
      this.#refused++;
      this.o.refuse(p);
      return false;
    }
    return true;
  }
}
