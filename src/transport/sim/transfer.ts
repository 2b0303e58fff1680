import { createHash, type Hash } from 'node:crypto';
import { addrEquals } from '../../protocol/address.js';
import type { TransportEndpoint } from '../endpoint.js';
import type { CloseReason, ConnectionStats, EndpointEvent } from '../types.js';
import type { SimNetwork, SimNode } from './network.js';
import { PayloadStream, PayloadVerifier } from './payload.js';

export interface TransferOptions {
  from: SimNode<TransportEndpoint>;
  to: SimNode<TransportEndpoint>;
  port: number;
  /** Bytes the dialer sends. */
  bytes: number;
  /** Seeds the payload (the reply uses a stream derived from it). */
  seed: number;
  /** Bytes the acceptor sends back on the same connection (default 0). */
  replyBytes?: number;
  /** Largest single write() (default 64 KiB). */
  writeChunk?: number;
}

export interface SideResult {
  connId: number | undefined;
  /** Reason of the 'closed' event, if one arrived. */
  reason: CloseReason | undefined;
  closedAt: number | undefined;
  /** The last stats snapshot taken while the connection existed. */
  stats: ConnectionStats | undefined;
  bytesWritten: number;
  bytesRead: number;
  /** Whatever was read arrived intact and complete. */
  readOk: boolean;
  firstMismatch: number | null;
  sentSha256: string;
  receivedSha256: string;
}

export interface TransferResult {
  /** Both sides reported 'closed' (with any reason) before the time limit. */
  finished: boolean;
  /** Every byte arrived exactly, in both directions. */
  ok: boolean;
  bytes: number;
  replyBytes: number;
  dialAt: number;
  /** Virtual ms from dial() until the acceptor held the last byte (or saw end of an empty stream). */
  durationMs: number | undefined;
  dialer: SideResult;
  acceptor: SideResult;
}

type Role = 'dialer' | 'acceptor';

/** One end of a transfer: writes its stream, verifies the peer's, closes when its rule says so. */
class Side {
  connId: number | undefined;
  reason: CloseReason | undefined;
  closedAt: number | undefined;
  stats: ConnectionStats | undefined;
  peerEnded = false;
  private closeRequested = false;
  private readonly out: PayloadStream;
  private readonly verifier: PayloadVerifier;
  private readonly outHash: Hash = createHash('sha256');
  private readonly inHash: Hash = createHash('sha256');
  private chunk: Uint8Array | null = null;
  private chunkOffset = 0;
  private written = 0;
  private writesDone = false;
  /** Time the last expected byte was read. */
  completeAt: number | undefined;

  constructor(
    readonly role: Role,
    readonly node: SimNode<TransportEndpoint>,
    private readonly net: SimNetwork,
    outSeed: number,
    outBytes: number,
    inSeed: number,
    readonly inBytes: number,
    private readonly writeChunk: number,
  ) {
    this.out = new PayloadStream(outSeed, outBytes);
    this.verifier = new PayloadVerifier(inSeed, inBytes);
  }

  get endpoint(): TransportEndpoint {
    return this.node.endpoint;
  }

  get closed(): boolean {
    return this.reason !== undefined;
  }

  snapshot(): void {
    if (this.connId === undefined || this.closed) return;
    const info = this.endpoint.connection(this.connId);
    if (info !== undefined) this.stats = { ...info.stats };
  }

  pump(): void {
    if (this.connId === undefined || this.closed || this.closeRequested) return;
    while (!this.writesDone) {
      if (this.chunk === null || this.chunkOffset >= this.chunk.length) {
        this.chunk = this.out.nextChunk(this.writeChunk);
        this.chunkOffset = 0;
        if (this.chunk === null) {
          this.writesDone = true;
          break;
        }
        this.outHash.update(this.chunk);
      }
      const accepted = this.endpoint.write(this.connId, this.chunk.subarray(this.chunkOffset), this.net.now);
      if (accepted <= 0) break;
      this.chunkOffset += accepted;
      this.written += accepted;
    }
    this.maybeClose();
  }

  drainReads(): void {
    if (this.connId === undefined) return;
    for (
      let data = this.endpoint.read(this.connId, Number.MAX_SAFE_INTEGER, this.net.now);
      data !== null && data.length > 0;
      data = this.endpoint.read(this.connId, Number.MAX_SAFE_INTEGER, this.net.now)
    ) {
      this.verifier.push(data);
      this.inHash.update(data);
    }
    if (
      this.completeAt === undefined &&
      this.verifier.received >= this.inBytes &&
      (this.inBytes > 0 || this.peerEnded)
    ) {
      this.completeAt = this.net.now;
    }
  }

  /**
   * The dialer closes once it has written everything and read the whole reply; the acceptor
   * closes after the dialer's end of stream (there is no half-close, so it must wait for it).
   */
  maybeClose(): void {
    if (this.connId === undefined || this.closeRequested || this.closed || !this.writesDone) return;
    const ready = this.role === 'dialer' ? this.verifier.received >= this.inBytes : this.peerEnded;
    if (!ready) return;
    this.closeRequested = true;
    const info = this.endpoint.connection(this.connId);
    if (info !== undefined && info.state !== 'TIME_WAIT' && info.state !== 'CLOSED')
      this.endpoint.close(this.connId, this.net.now);
  }

  result(): SideResult {
    return {
      connId: this.connId,
      reason: this.reason,
      closedAt: this.closedAt,
      stats: this.stats,
      bytesWritten: this.written,
      bytesRead: this.verifier.received,
      readOk: this.verifier.complete(),
      firstMismatch: this.verifier.firstMismatch,
      sentSha256: this.outHash.copy().digest('hex'),
      receivedSha256: this.inHash.copy().digest('hex'),
    };
  }
}

const listening = new WeakMap<SimNode<TransportEndpoint>, Set<number>>();

function ensureListening(node: SimNode<TransportEndpoint>, port: number): void {
  let ports = listening.get(node);
  if (ports === undefined) {
    ports = new Set();
    listening.set(node, ports);
  }
  if (ports.has(port)) return;
  node.endpoint.listen(port);
  ports.add(port);
}

/** A transfer in progress; drive the network until `done`, then read `result()`. */
export class Transfer {
  readonly dialAt: number;
  private readonly dialer: Side;
  private readonly acceptor: Side;
  private dialerPort: number | undefined;
  private readonly unsubscribe: (() => void)[] = [];

  constructor(
    private readonly net: SimNetwork,
    readonly options: TransferOptions,
  ) {
    const { from, to, port, bytes, seed } = options;
    const replyBytes = options.replyBytes ?? 0;
    const chunk = options.writeChunk ?? 64 * 1024;
    const replySeed = (seed ^ 0x5bd1e995) >>> 0;
    this.dialer = new Side('dialer', from, net, seed, bytes, replySeed, replyBytes, chunk);
    this.acceptor = new Side('acceptor', to, net, replySeed, replyBytes, seed, bytes, chunk);
    ensureListening(to, port);
    this.unsubscribe.push(to.on((e) => this.onAcceptorEvent(e)));
    this.unsubscribe.push(from.on((e) => this.onDialerEvent(e)));
    this.dialAt = net.now;
    this.dialer.connId = from.endpoint.dial({ addr: to.addr, port }, net.now);
    this.dialerPort = from.endpoint.connection(this.dialer.connId)?.localPort;
    this.dialer.snapshot();
  }

  get done(): boolean {
    return this.dialer.closed && (this.acceptor.closed || this.acceptor.connId === undefined);
  }

  result(): TransferResult {
    const dialer = this.dialer.result();
    const acceptor = this.acceptor.result();
    const completeAt = this.acceptor.completeAt;
    return {
      finished: this.done,
      ok: acceptor.readOk && dialer.readOk,
      bytes: this.options.bytes,
      replyBytes: this.options.replyBytes ?? 0,
      dialAt: this.dialAt,
      durationMs: completeAt === undefined ? undefined : completeAt - this.dialAt,
      dialer,
      acceptor,
    };
  }

  private onDialerEvent(e: EndpointEvent): void {
    if (!('connId' in e) || e.connId !== this.dialer.connId) return;
    this.handle(this.dialer, e);
  }

  private onAcceptorEvent(e: EndpointEvent): void {
    const side = this.acceptor;
    if (e.type === 'accepted') {
      if (side.connId !== undefined || e.localPort !== this.options.port) return;
      if (!addrEquals(e.remote.addr, this.options.from.addr)) return;
      if (this.dialerPort !== undefined && e.remote.port !== this.dialerPort) return;
      side.connId = e.connId;
      side.snapshot();
      side.pump();
      return;
    }
    if (!('connId' in e) || side.connId === undefined || e.connId !== side.connId) return;
    this.handle(side, e);
  }

  private handle(side: Side, e: EndpointEvent): void {
    switch (e.type) {
      case 'connected':
      case 'writable':
        side.pump();
        break;
      case 'readable':
        side.drainReads();
        if (side.completeAt !== undefined) this.snapshotBoth();
        side.maybeClose();
        break;
      case 'end':
        side.peerEnded = true;
        side.drainReads();
        side.maybeClose();
        break;
      case 'closed':
        side.reason = e.reason;
        side.closedAt = this.net.now;
        if (this.done) for (const off of this.unsubscribe.splice(0)) off();
        return;
      default:
        return;
    }
    this.snapshotBoth();
  }

  private snapshotBoth(): void {
    this.dialer.snapshot();
    this.acceptor.snapshot();
  }
}

export function startTransfer(net: SimNetwork, options: TransferOptions): Transfer {
  return new Transfer(net, options);
}

/** Runs one transfer to completion (or until `maxVirtualMs` passes) and reports it. */
export function transfer(net: SimNetwork, options: TransferOptions & { maxVirtualMs?: number }): TransferResult {
  const t = startTransfer(net, options);
  net.runUntil(() => t.done, options.maxVirtualMs ?? 30 * 60 * 1000);
  return t.result();
}
