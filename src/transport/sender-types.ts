/** The data shapes of a stream's send side (StreamSender). */

import type { SackBlock } from '../protocol/sack.js';
import type { Millis } from './types.js';

export const WINDOW_UNIT = 4096;

export interface Segment {
  seq: number;
  data: Buffer;
  /** Time of the latest transmission. */
  sentAt: Millis;
  xmits: number;
  sacked: boolean;
  /** Deemed lost and not yet retransmitted. */
  lost: boolean;
}

export interface AckInfo {
  ack: number;
  /** Advertised window in 4096-byte units. */
  window: number;
  sack: readonly SackBlock[] | null;
  payloadLength: number;
}

export interface OutSegment {
  seq: number;
  data: Buffer;
  retransmit: boolean;
}

export interface SenderCounters {
  bytesSent: number;
  segmentsSent: number;
  retransmits: number;
  fastRetransmits: number;
  timeouts: number;
  spuriousRetransmits: number;
  dupAcks: number;
  sackBlocksRecv: number;
  /** Tail loss probes sent (each also counts as a retransmission). */
  tailProbes: number;
}
