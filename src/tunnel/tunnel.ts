import { EventEmitter } from 'node:events';
import { PilotError } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import type { NatProbeReply } from '../protocol/nat-probe.js';
import type { Packet } from '../protocol/packet.js';
import { Authenticator } from './authenticator.js';
import { TunnelCore, type CoreEvent } from './core.js';
import { parseEndpoint, parseListenAddress, type UdpEndpoint } from './endpoint.js';
import { detectNat, type NatProber, type NatReport } from './nat-detect.js';
import type { TunnelStats } from './stats.js';
import type { TunnelEvents, TunnelOptions, TunnelPeerInfo } from './types.js';
import { UdpSocket } from './udp-socket.js';

export type { TunnelOptions, TunnelPeerInfo, EstablishedEvent, DroppedEvent, TunnelEvents } from './types.js';

const DISCOVER_RESEND_MS = 1000;

/**
 * The UDP tunnel of PROTOCOL.md §3–4: drives a `TunnelCore` with one real socket (peer, beacon
 * and relayed traffic), one timer, the real clock and the registry's keys, and emits its events.
 */
export class Tunnel extends EventEmitter<TunnelEvents> implements NatProber {
  readonly localPort: number;
  readonly #socket: UdpSocket;
  readonly #core: TunnelCore;
  readonly #auth: Authenticator;
  readonly #log: Logger;
  readonly #natReplies = new Map<number, (reply: NatProbeReply, from: UdpEndpoint) => void>();
  readonly #observedWaiters = new Set<(endpoint: string | undefined) => void>();
  #timer: NodeJS.Timeout | undefined;
  #timerAt: number | undefined;
  #flushQueued = false;
  /** A flushNow sent this turn's first packets early; the turn's later ones wait for its end. */
  #flushedEarly = false;
  /** What the last NAT detection found (undefined until one ran). */
  #nat: NatReport | undefined;
  #closed = false;

  private constructor(socket: UdpSocket, options: TunnelOptions, beacon: UdpEndpoint | undefined) {
    super();
    this.localPort = socket.port;
    this.#socket = socket;
    this.#log = options.log ?? silentLogger();
    this.#auth = new Authenticator(options.keys);
    this.#core = new TunnelCore({
      identity: options.identity,
      encrypt: options.encrypt ?? true,
      ...(beacon ? { beacon } : {}),
      log: this.#log,
    });
    this.#pump();
  }

  static async open(options: TunnelOptions): Promise<Tunnel> {
    const listen = parseListenAddress(options.listen);
    let tunnel: Tunnel | undefined;
    const socket = await UdpSocket.bind(
      listen,
      (data, from) => {
        if (tunnel) tunnel.#onDatagram(data, from);
      },
      (err) => {
        if (tunnel) tunnel.#log.warn({ err: err.message }, 'tunnel socket error');
      },
    );
    let beacon: UdpEndpoint | undefined;
    try {
      beacon = options.beacon ? await socket.resolve(options.beacon) : undefined;
    } catch (err) {
      await socket.close();
      throw err;
    }
    tunnel = new Tunnel(socket, options, beacon);
    return tunnel;
  }

  get nodeId(): number {
    return this.#core.nodeId;
  }

  get encrypted(): boolean {
    return this.#core.encrypted;
  }

  /** Our per-process X25519 public key, as carried in our PILA frames. */
  get x25519PublicKey(): Uint8Array {
    return this.#core.x25519PublicKey;
  }

  setNodeId(id: number): void {
    this.#core.setNodeId(id);
  }

  /** Adds a peer or replaces its endpoint; with encryption on, starts the key exchange. */
  addPeer(nodeId: number, endpoint: string): void {
    const ep = parseEndpoint(endpoint);
    if (!ep)
      throw new PilotError(
        'invalid_argument',
        `invalid peer endpoint "${endpoint}"`,
        'expected ip:port or [ipv6]:port',
      );
    this.#core.addPeer(nodeId, ep, Date.now());
    this.#pump();
  }

  /** True when packets to a node go straight to a loopback address (same host, no relay). */
  pathIsLoopback(nodeId: number): boolean {
    return this.#core.pathIsLoopback(nodeId);
  }

  hasPeer(nodeId: number): boolean {
    return this.#core.hasPeer(nodeId);
  }

  /** Forgets a node's endpoint and sets its crypto context aside (trust revoked; see PeerBook.remove). */
  removePeer(nodeId: number): void {
    this.#core.removePeer(nodeId, Date.now());
  }

  /** Switches a peer to (or from) relaying through the beacon. False when that is not possible. */
  setRelay(nodeId: number, on: boolean): boolean {
    const done = this.#core.setRelay(nodeId, on, Date.now());
    this.#pump();
    return done;
  }

  /** Whether fresh authenticated traffic came straight from the node within `ms`. */
  directSeenWithin(nodeId: number, ms: number, now = Date.now()): boolean {
    return this.#core.directSeenWithin(nodeId, ms, now);
  }

  /**
   * Lets packets to a node travel several to a PILM frame (the node advertised that it reads them).
   * Off for every peer until turned on; a Go peer never receives one.
   */
  setBatching(nodeId: number, on: boolean): void {
    this.#core.setBatching(nodeId, on);
  }

  /** Sends one packet; false if there is no endpoint for the node. */
  send(nodeId: number, packet: Packet): boolean {
    const sent = this.#core.send(nodeId, packet, Date.now());
    this.#pump();
    return sent;
  }

  /**
   * Seals and sends the packets waiting for the end of this event-loop turn now: for a packet that
   * starts an exchange (a dial's SYN), whose answer the rest of the turn can run beside. Once per
   * turn: in a burst (a client's eight dials read at once) the packets after the first still share
   * the end of the turn's frames, rather than a datagram each for both nodes to handle.
   */
  flushNow(): void {
    if (this.#closed || this.#flushedEarly || !this.#core.flushPending) return;
    this.#flushedEarly = true;
    this.#core.flush();
    this.#pump();
  }

  peers(): TunnelPeerInfo[] {
    return this.#core.peers();
  }

  /** The NAT behaviour found by the last `detectNat()`, if any. */
  get nat(): NatReport | undefined {
    return this.#nat;
  }

  /** Our endpoint as the beacon last reported it. */
  get observedEndpoint(): string | undefined {
    return this.#core.observedEndpoint;
  }

  /** For `detectNat`: the endpoint the beacon last reported. */
  get observed(): string | undefined {
    return this.#core.observedEndpoint;
  }

  /** For `detectNat`: one NAT probe, its replies to `onReply` until cancelled. */
  natProbe(token: number, onReply: (reply: NatProbeReply, from: UdpEndpoint) => void, to?: UdpEndpoint): () => void {
    this.#natReplies.set(token, onReply);
    this.#core.natProbe(token, Date.now(), to);
    this.#pump();
    return () => {
      this.#natReplies.delete(token);
      this.#core.cancelNatProbe(token);
    };
  }

  /**
   * Finds how the NAT in front of this socket maps and filters, with NAT probes to the beacon
   * (a pilot-ts extension; against a Go beacon the answer is "unknown").
   */
  async detectNat(timeoutMs = 800): Promise<NatReport> {
    const report = await detectNat(this, this.#core.beacon, this.localPort, timeoutMs);
    if (!this.#closed) {
      this.#nat = report;
      this.#core.setNatMapping(report.mapping);
    }
    return report;
  }

  get stats(): TunnelStats {
    return this.#core.stats;
  }

  /** Asks the beacon which ip:port it sees this socket as (Discover with node 0), from this socket. */
  discoverEndpoint(timeoutMs = 5000): Promise<string | undefined> {
    if (this.#closed || !this.#core.beacon) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const send = (): void => {
        this.#core.discover(Date.now());
        this.#pump();
      };
      const resend = setInterval(send, DISCOVER_RESEND_MS);
      const timeout = setTimeout(() => done(undefined), timeoutMs);
      const done = (endpoint: string | undefined): void => {
        clearInterval(resend);
        clearTimeout(timeout);
        this.#observedWaiters.delete(done);
        resolve(endpoint);
      };
      this.#observedWaiters.add(done);
      send();
    });
  }

  registerWithBeacon(): void {
    this.#core.registerWithBeacon(Date.now());
    this.#pump();
  }

  /** Whether the beacon confirmed our proof of id within `ms` (a Go beacon never does). */
  provenAtBeaconWithin(ms: number, now = Date.now()): boolean {
    return this.#core.provenAtBeaconWithin(ms, now);
  }

  requestPunch(target: number): void {
    this.#core.requestPunch(target, Date.now());
    this.#pump();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#core.close();
    this.#natReplies.clear();
    for (const done of [...this.#observedWaiters]) done(undefined);
    await this.#socket.close();
  }

  #onDatagram(data: Buffer, from: UdpEndpoint): void {
    if (this.#closed) return;
    this.#core.handleDatagram(data, from, Date.now());
    this.#pump(true);
  }

  #onTimer(): void {
    this.#timer = undefined;
    this.#timerAt = undefined;
    if (this.#closed) return;
    this.#core.handleTimeout(Date.now());
    this.#pump();
  }

  /**
   * Hands what the core produced to the socket, the listeners and the registry, and re-arms the
   * timer. `received`: a datagram came in, and the flush is queued whether or not anything waits
   * yet: queued behind the stack's own end-of-turn work that the datagram started, it seals the
   * reply that work writes in the same turn instead of the next.
   */
  #pump(received = false): void {
    if (this.#closed) return;
    const core = this.#core;
    for (let t = core.pollTransmit(); t; t = core.pollTransmit()) {
      const transmit = t;
      if (this.#socket.send(transmit.bytes, transmit.to, () => core.sendFailed(transmit, 'send_error'))) core.sent(t);
      else core.sendFailed(t, 'unreachable');
    }
    for (let r = core.pollRequest(); r; r = core.pollRequest()) {
      const { id, frame } = r;
      this.#auth.verify(frame).then(
        (verdict) => {
          if (this.#closed) return;
          core.verified(id, verdict, Date.now());
          this.#pump();
        },
        (err: unknown) => this.#log.warn({ err: String(err), node: frame.senderNode }, 'PILA verification failed'),
      );
    }
    for (let e = core.pollEvent(); e; e = core.pollEvent()) this.#emitEvent(e);
    // Batched packets are sealed once this event-loop turn has run its promise chains too, not in a
    // microtask: the ACK of a SYN-ACK then waits for the application that the dial's promise chain
    // reaches (it sees its data before an ACK is sealed, and the RST or FIN it answers with travels
    // in the same datagram), and a turn's writes from several callbacks share frames.
    if ((received || core.flushPending) && !this.#flushQueued) {
      this.#flushQueued = true;
      setImmediate(() => {
        this.#flushQueued = false;
        this.#flushedEarly = false;
        core.flush();
        this.#pump();
      });
    }
    this.#arm();
  }

  #emitEvent(e: CoreEvent): void {
    if (e.type === 'nat-probe-reply') return void this.#natReplies.get(e.token)?.(e.reply, e.from);
    (this.emit as (name: string, ...args: unknown[]) => boolean)(e.type, ...e.args);
    if (e.type === 'observed-endpoint') for (const done of [...this.#observedWaiters]) done(e.args[0].endpoint);
  }

  #arm(): void {
    const at = this.#core.nextTimeout();
    if (at === undefined || (this.#timerAt !== undefined && this.#timerAt <= at)) return;
    clearTimeout(this.#timer);
    this.#timerAt = at;
    this.#timer = setTimeout(() => this.#onTimer(), Math.max(0, at - Date.now()));
    this.#timer.unref();
  }
}
