import type { ConnectionOptions } from './types.js';

export const DEFAULT_CONNECTION_OPTIONS: Readonly<ConnectionOptions> = Object.freeze({
  mss: 4096,
  recvBufferBytes: 512 * 4096,
  sendBufferBytes: 4 * 1024 * 1024,
  initialCwnd: 10 * 4096,
  maxCwnd: 4 * 1024 * 1024,
  nagle: true,
  nagleDelayMs: 40,
  delayedAckMs: 40,
  keepaliveMs: 30_000,
  idleTimeoutMs: 120_000,
  timeWaitMs: 10_000,
  minRtoMs: 200,
  maxRtoMs: 10_000,
  initialRtoMs: 1_000,
  maxRetransmits: 12,
  maxSynRetries: 6,
  isn: 0,
  peerHonoursZeroWindow: false,
});

/** Largest segment payload: a packet (34-byte header) plus tunnel overhead must fit one UDP datagram. */
export const MAX_MSS = 65535 - 64;

export function resolveConnectionOptions(partial: Partial<ConnectionOptions> = {}): ConnectionOptions {
  const o: ConnectionOptions = { ...DEFAULT_CONNECTION_OPTIONS, ...partial };
  if (!Number.isInteger(o.mss) || o.mss < 16 || o.mss > MAX_MSS) throw new RangeError(`mss out of range: ${o.mss}`);
  if (o.recvBufferBytes < o.mss) throw new RangeError('recvBufferBytes must hold at least one segment');
  if (o.sendBufferBytes < o.mss) throw new RangeError('sendBufferBytes must hold at least one segment');
  if (o.minRtoMs <= 0 || o.maxRtoMs < o.minRtoMs) throw new RangeError('invalid RTO bounds');
  o.isn = o.isn >>> 0;
  return o;
}
