import { encodeSack } from '../protocol/sack.js';
import type { ReceiveCounters } from './connection-stats.js';
import { receiveBufferBytes, type StreamReceiver } from './receiver.js';
import { WINDOW_UNIT } from './sender-types.js';
import type { ConnectionOptions } from './types.js';

const EMPTY = new Uint8Array(0);
/**
 * What a receiver takes beyond its buffer from a peer that reads a zero window as "no limit": such
 * a sender may send while its bytes in flight are below the window, so it can have one window unit
 * plus one segment (of at most one unit) beyond the last ACK, and the smallest window it is shown
 * is one unit.
 */
export const LEGACY_SLACK_BYTES = 2 * WINDOW_UNIT;
/** Duplicate ACKs that make a reference sender retransmit at once (PROTOCOL.md §7.8). */
const DUP_ACK_THRESHOLD = 3;

/**
 * The receive side's acknowledgement rules: when an ACK is due, which SACK blocks it carries, the
 * window it advertises and when a grown window is worth telling the peer.
 */
export class AckPolicy {
  /** In-order segments received since the last ACK (every second one is acknowledged at once). */
  private unacked = 0;
  private lastAdvertised = 0;
  /** Data from a peer that ignores a zero window was dropped beyond the window. */
  private droppedBeyondWindow = false;

  constructor(
    private readonly opts: ConnectionOptions,
    private readonly counters: ReceiveCounters,
  ) {}

  /** An ACK went out (alone or on a data segment). */
  sent(): void {
    this.unacked = 0;
  }

  /**
   * The handshake's last ACK waits for the first data segment (see Connection.onSynAck). The
   * peer's first data then counts as the second segment for a reference peer, which is answered at
   * once: its Nagle holds a second small write for the ACK or 40 ms. A pilot-ts peer (proved by its
   * capability advert) holds one for a round trip at most, so its first data waits like any other
   * and the ACK usually rides on our next data or FIN: one datagram less per request/response.
   */
  deferHandshakeAck(): void {
    this.unacked = this.opts.peerHonoursZeroWindow ? 0 : 1;
  }

  /** In-order data arrived: whether to acknowledge at once rather than after the delayed-ACK time. */
  ackNowForInOrder(receiver: StreamReceiver, hadHoles: boolean): boolean {
    // Held data is SACKed at once, before the sender's retransmission timer fires.
    return hadHoles || receiver.hasOutOfOrder || receiver.holding || ++this.unacked >= 2;
  }

  /** Data from a peer that ignores a zero window fell beyond the window and was dropped. */
  noteDroppedBeyondWindow(): void {
    if (!this.opts.peerHonoursZeroWindow) this.droppedBeyondWindow = true;
  }

  /** The peer turned out to stop at a zero window: nothing to make up for. */
  forgetDrops(): void {
    this.droppedBeyondWindow = false;
  }

  /** The SACK blocks an ACK carries while data is missing or held; empty otherwise. */
  payload(receiver: StreamReceiver | undefined): Uint8Array {
    if (!receiver || !(receiver.hasOutOfOrder || receiver.holding)) return EMPTY;
    const blocks = receiver.sackBlocks();
    if (blocks.length === 0) return EMPTY;
    this.counters.sackBlocksSent += blocks.length;
    return encodeSack(blocks);
  }

  /**
   * Free receive space in window units; never 0 to a peer that would read 0 as "no limit". Before
   * the receiver exists (a dial's SYN) it is the buffer the receiver will have: a SYN that offered
   * less would make the first read after the handshake a window update of its own.
   */
  window(receiver: StreamReceiver | undefined): number {
    const free = receiver ? receiver.windowBytes : receiveBufferBytes(this.opts.mss, this.opts.recvBufferBytes);
    const units = Math.min(0xffff, Math.floor(free / WINDOW_UNIT));
    return this.opts.peerHonoursZeroWindow ? units : Math.max(1, units);
  }

  /** A segment carrying `window` went out. */
  advertised(window: number): void {
    this.lastAdvertised = window;
  }

  /** After a read: whether the window grew enough (or held data was released) to tell the peer now. */
  windowUpdateDue(window: number, released: boolean): boolean {
    const step = Math.max(2, Math.floor(this.opts.recvBufferBytes / WINDOW_UNIT / 4));
    return released || window - this.lastAdvertised >= step || (this.lastAdvertised < 2 && window >= 2);
  }

  /**
   * Bare duplicates to send after a window update. To a peer that ignores a zero window the update
   * is repeated: a lost release would leave the sender waiting, since it probes with bare ACKs that
   * get no answer; after a drop, three duplicates follow (bare, without SACK, the only kind a
   * reference sender counts) so that it retransmits at once rather than on its timer.
   */
  duplicatesAfterUpdate(released: boolean): number {
    if (this.opts.peerHonoursZeroWindow) return 0;
    const copies = this.droppedBeyondWindow ? DUP_ACK_THRESHOLD : released ? 1 : 0;
    this.droppedBeyondWindow = false;
    return copies;
  }
}
