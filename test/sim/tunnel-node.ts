import { Identity } from '../../src/crypto/index.js';
import { makeAddr } from '../../src/protocol/address.js';
import { makePacket, Proto } from '../../src/protocol/packet.js';
import { checkPila } from '../../src/tunnel/authenticator.js';
import { TunnelCore, type CoreEvent } from '../../src/tunnel/core.js';
import { parseEndpoint, type UdpEndpoint } from '../../src/tunnel/endpoint.js';
import type { SimNat, SimWorld } from './tunnel-world.js';

const NETWORK = 1;
const APP_PORT = 1000;

/** One packet of the test traffic as the receiver saw it. */
export interface Arrival {
  readonly seq: number;
  readonly sentAt: number;
  readonly at: number;
}

/** One tunnel event with the virtual time it came out at. */
export interface Noted {
  readonly at: number;
  readonly event: CoreEvent;
}

/**
 * A node of the tunnel simulation: a TunnelCore driven as the daemon's Tunnel drives it, with the
 * virtual clock, the world's datagrams, registry keys answered at once, and one timer event.
 * `restart()` replaces the core (a new process: new X25519 key, nothing remembered).
 */
export class SimTunnelNode {
  readonly identity = Identity.generate();
  core: TunnelCore;
  local: UdpEndpoint;
  readonly events: Noted[] = [];
  /** Test packets received, by sending node. */
  readonly arrivals = new Map<number, Arrival[]>();
  #timerAt: number | undefined;
  #seq = 0;

  constructor(
    private readonly world: SimWorld,
    readonly name: string,
    readonly nodeId: number,
    local: UdpEndpoint,
    readonly nat: SimNat | undefined,
  ) {
    world.keys.set(nodeId, this.identity.publicKey);
    this.local = local;
    this.core = this.#newCore();
    world.bind(local, this);
  }

  #newCore(): TunnelCore {
    const core = new TunnelCore({ identity: this.identity, beacon: this.world.beaconEndpoint });
    core.setNodeId(this.nodeId);
    return core;
  }

  /**
   * As a starting daemon: asks the beacon where it sees us (again every second until it answers)
   * and registers (Discover with our id, then the proof).
   */
  start(): void {
    const core = this.core;
    const discover = (tries: number): void => {
      if (core !== this.core || core.observedEndpoint || tries === 0) return;
      this.#call((now) => core.discover(now));
      this.world.at(this.world.now + 1000, () => discover(tries - 1));
    };
    discover(5);
    this.#call((now) => core.registerWithBeacon(now));
  }

  /** A new process on the same host, bound to `local` (by default the same socket address). */
  restart(local: UdpEndpoint = this.local): void {
    this.core.close();
    this.world.unbind(this.local);
    this.local = local;
    this.world.bind(local, this);
    this.#timerAt = undefined;
    this.core = this.#newCore();
    this.start();
  }

  /** What the daemon does to reach a node whose endpoint the registry gave: add it and punch. */
  connect(peer: SimTunnelNode): void {
    const endpoint = peer.core.observedEndpoint;
    if (!endpoint) throw new Error(`${peer.name} has no observed endpoint yet`);
    this.#call((now) => {
      this.core.addPeer(peer.nodeId, parseEndpoint(endpoint) as UdpEndpoint, now);
      this.core.requestPunch(peer.nodeId, now);
    });
  }

  /** Sends one test packet (sequence number and send time) if the tunnel knows the node. */
  sendTo(nodeId: number): boolean {
    const payload = Buffer.alloc(12);
    payload.writeUInt32BE(this.#seq++, 0);
    payload.writeDoubleBE(this.world.now, 4);
    const packet = makePacket({
      flags: 0,
      protocol: Proto.Datagram,
      src: makeAddr(NETWORK, this.nodeId),
      dst: makeAddr(NETWORK, nodeId),
      srcPort: APP_PORT,
      dstPort: APP_PORT,
      seq: 0,
      ack: 0,
      window: 0,
      payload,
    });
    let sent = false;
    this.#call((now) => {
      sent = this.core.send(nodeId, packet, now);
    });
    return sent;
  }

  receive(bytes: Uint8Array, from: UdpEndpoint): void {
    this.#call((now) => this.core.handleDatagram(bytes, from, now));
  }

  eventsOf<T extends CoreEvent['type']>(type: T): (Noted & { event: Extract<CoreEvent, { type: T }> })[] {
    return this.events.filter((n): n is Noted & { event: Extract<CoreEvent, { type: T }> } => n.event.type === type);
  }

  #call(fn: (now: number) => void): void {
    fn(this.world.now);
    this.#pump();
  }

  /** Drains the core: datagrams into the world, verdicts straight back, events noted, batches flushed. */
  #pump(): void {
    const core = this.core;
    const now = this.world.now;
    for (;;) {
      let busy = false;
      for (let t = core.pollTransmit(); t; t = core.pollTransmit()) {
        busy = true;
        const bytes = t.bytes instanceof Uint8Array ? t.bytes : Buffer.concat(t.bytes);
        core.sent(t);
        this.world.send(this.local, this.nat, t.to, bytes);
      }
      for (let r = core.pollRequest(); r; r = core.pollRequest()) {
        busy = true;
        const key = this.world.keys.get(r.frame.senderNode);
        core.verified(r.id, key ? checkPila(r.frame, key) : 'unknown_key', now);
      }
      for (let e = core.pollEvent(); e; e = core.pollEvent()) {
        busy = true;
        this.#note(e, now);
      }
      if (core.flushPending) {
        busy = true;
        core.flush();
      }
      if (!busy) break;
    }
    this.#arm(core);
  }

  #note(event: CoreEvent, now: number): void {
    if (event.type !== 'packet') {
      this.events.push({ at: now, event });
      return;
    }
    const [packet, from] = event.args;
    const payload = Buffer.from(packet.payload);
    const list = this.arrivals.get(from) ?? [];
    list.push({ seq: payload.readUInt32BE(0), sentAt: payload.readDoubleBE(4), at: now });
    this.arrivals.set(from, list);
  }

  #arm(core: TunnelCore): void {
    const at = core.nextTimeout();
    if (at === undefined || (this.#timerAt !== undefined && this.#timerAt <= at && this.#timerAt >= this.world.now))
      return;
    this.#timerAt = at;
    this.world.at(at, () => {
      if (core !== this.core || this.#timerAt !== at) return;
      this.#timerAt = undefined;
      this.#call((now) => core.handleTimeout(now));
    });
  }
}
