import { seqAdd } from './seq.js';
import type { Millis } from './types.js';

/**
 * The closing handshake of one connection: our FIN (its sequence number, transmissions and
 * acknowledgement) and what the application has been told.
 */
export class Closing {
  /** close() was called: the FIN follows the last acknowledged byte. */
  requested = false;
  private finSent = false;
  private finSeq = 0;
  private finAcked = false;
  private transmissions = 0;
  private endTold = false;
  private closedTold = false;

  get sent(): boolean {
    return this.finSent;
  }

  /** Our FIN's sequence number (meaningful once sent). */
  get seq(): number {
    return this.finSeq;
  }

  /** The peer acknowledged our FIN and we told the application of its own: time for TIME_WAIT. */
  get bothFinished(): boolean {
    return this.finAcked && this.endTold;
  }

  get endReported(): boolean {
    return this.endTold;
  }

  /** Our FIN takes `seq`, the sequence number after the last byte (all of them acknowledged). */
  start(seq: number): void {
    this.finSeq = seq;
    this.finSent = true;
    this.transmissions = 0;
  }

  /** Our FIN went out (again); returns when to retransmit it (exponential backoff, capped). */
  transmitted(now: Millis, rto: Millis, maxRto: Millis): Millis {
    this.transmissions++;
    return now + Math.min(rto * 2 ** (this.transmissions - 1), maxRto);
  }

  /** Retransmissions are used up: stop waiting for the FIN's acknowledgement. */
  exhausted(maxRetransmits: number): boolean {
    return this.transmissions > maxRetransmits;
  }

  /** The sequence number our segments carry: once the FIN is sent, its own. */
  sendSeq(sndNxt: number): number {
    return this.finSent ? this.finSeq : sndNxt;
  }

  /** The acknowledgement as the sender sees it: an ACK of our FIN covers the data before it. */
  dataAck(ack: number): number {
    return this.finSent && ack === seqAdd(this.finSeq, 1) ? this.finSeq : ack;
  }

  /** True when `ack` acknowledges our FIN for the first time. */
  acknowledges(ack: number): boolean {
    if (!this.finSent || this.finAcked || ack !== seqAdd(this.finSeq, 1)) return false;
    this.finAcked = true;
    return true;
  }

  /** True once: the application is told the peer finished ('end'). */
  reportEnd(): boolean {
    if (this.endTold) return false;
    this.endTold = true;
    return true;
  }

  /** True once: the application is told the connection closed ('closed'). */
  reportClosed(): boolean {
    if (this.closedTold) return false;
    this.closedTold = true;
    return true;
  }
}
