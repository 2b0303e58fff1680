import type { UdpEndpoint } from './endpoint.js';

/** Bounds and timings of the tunnel. */
export const MAX_PEERS = 4096;
/** Crypto contexts of removed peers kept to resume with (see PeerBook.remove), and for how long. */
export const DORMANT_PEERS = 256;
export const DORMANT_MS = 5 * 60_000;
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
/**
 * The AES-GCM contexts used are made again this long after the first use (see ContextPrep): once
 * an exchange on a local network has ended, long before the next request of an agent that talks
 * now and then.
 */
export const CONTEXT_PREP_DELAY_MS = 3;
/** A relayed peer's direct path is probed after this, then at doubling intervals up to the maximum. */
export const PROBE_FIRST_MS = 2000;
export const PROBE_MAX_MS = 60_000;
/** A relayed peer's direct path is probed at least this often (with a coordinated punch each time). */
export const PROBE_CAP_MS = 30_000;
/**
 * A key exchange sent straight to a peer and unanswered for this long moves it to the relay
 * (shorter when our own NAT maps per destination, where punching rarely succeeds); the direct path
 * is still probed in the background and taken as soon as it answers.
 */
export const RELAY_AFTER_MS = 1500;
export const RELAY_AFTER_SYMMETRIC_MS = 700;
/** Retries of the PILP datagrams sent on a punch command (the first goes at once). */
export const PUNCH_RETRY_MS: readonly number[] = [80, 250];
/** At most one PILA or probe per node in this time in answer to its punch. */
export const PUNCH_ANSWER_INTERVAL_MS = 100;
/** Keep-alives: sent to a peer we exchanged packets with in the last PEER_IN_USE_MS when nothing went to it for KEEPALIVE_MS. */
export const KEEPALIVE_MS = 25_000;
export const PEER_IN_USE_MS = 180_000;
/**
 * Packets sent straight to a peer and nothing authenticated back for SILENCE_MS while we keep
 * sending (gaps under PATH_IDLE_MS): the path may have broken, e.g. a NAT on either side rebound or
 * renumbered. Every PATH_CHECK_MS while it lasts we ask the beacon where it sees us (a new endpoint
 * is proven to it and registered), have both sides punch again and probe the peer. A peer that
 * answers probes and stays silent for SILENCE_RELAY_MS of checks is relayed meanwhile.
 */
export const SILENCE_MS = 1500;
export const PATH_IDLE_MS = 5000;
export const PATH_CHECK_MS = 1000;
export const SILENCE_RELAY_MS = 4000;
/** After our endpoint changed, peers in use are checked this soon (our proof to the beacon first), and their punches answered for REBIND_PUNCH_MS. */
export const REBIND_CHECK_DELAY_MS = 300;
export const REBIND_PUNCH_MS = 10_000;
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
