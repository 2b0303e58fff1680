import type { UdpEndpoint } from './endpoint.js';

/** Bounds and timings of the tunnel. */
export const MAX_PEERS = 4096;
export const QUEUE_PER_PEER = 64;
export const QUEUE_PEERS = 256;
export const QUEUE_MAX_AGE_MS = 10_000;
export const EARLY_PER_PEER = 8;
export const EARLY_PEERS = 64;
export const EARLY_MAX_AGE_MS = 3000;
export const PILA_MIN_INTERVAL_MS = 250;
/** While packets wait for a peer's key, our PILA is repeated this often. */
export const PILA_REPEAT_MS = 1000;
/** A PILA that changes nothing is answered only if we have not sent one for this long (else it answers ours). */
export const PILA_REPLY_QUIET_MS = 1000;
export const RECOVERY_INTERVAL_MS = 1000;
export const TICK_MS = 250;
/** A relayed peer's direct path is probed after this, then at doubling intervals up to the maximum. */
export const PROBE_FIRST_MS = 2000;
export const PROBE_MAX_MS = 60_000;
/** At most one probe answer per peer in this time. */
export const PROBE_ANSWER_INTERVAL_MS = 500;

/** Where a frame came from: a UDP source, or a node whose frame the beacon relayed. */
export interface Origin {
  readonly endpoint: UdpEndpoint;
  readonly relayFrom?: number;
}

/**
 * Largest PILM datagram: on loopback a UDP datagram carries 64 KiB unfragmented; elsewhere a batch
 * stays within a common path MTU (a larger packet is still sent alone, as the reference does).
 */
export const BATCH_DATAGRAM_LOOPBACK = 65_000;
export const BATCH_DATAGRAM_PATH = 1_400;
