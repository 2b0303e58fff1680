import type { Addr, SocketAddr } from '../protocol/address.js';
import type { Packet } from '../protocol/packet.js';
import type { FlightResume, PeerFlight } from './peer-flight.js';
import type { ResetCause } from './reset-cause.js';

/** Milliseconds on the caller's clock (real or virtual). The engine never reads a clock itself. */
export type Millis = number;

export type ConnState =
  | 'CLOSED'
  | 'LISTEN'
  | 'SYN_SENT'
  | 'SYN_RECV'
  | 'ESTABLISHED'
  | 'FIN_WAIT'
  | 'CLOSE_WAIT'
  | 'TIME_WAIT';

export type CloseReason =
  /** Both sides closed cleanly. */
  | 'closed'
  /** The peer sent RST. */
  | 'reset'
  /** The peer refused the dial (RST to our SYN). */
  | 'refused'
  /** The dial got no answer. */
  | 'dial_timeout'
  /** Data stayed unacknowledged through every retransmission. */
  | 'retransmit_timeout'
  /** Nothing was heard from the peer for the idle timeout. */
  | 'idle_timeout'
  /** Closed locally with abort(). */
  | 'aborted'
  /** Closed by the endpoint to make room for another node's connection (its port or table was full). */
  | 'evicted'
  /** Outlived the longest life its port allows (see PortPolicy.maxLifetimeMs). */
  | 'expired';

export interface ConnectionOptions {
  /** Maximum payload per segment (default 4096). */
  mss: number;
  /** Receive buffer in bytes: in-order unread data plus out-of-order data (default 2 MiB = 512 segments). */
  recvBufferBytes: number;
  /** Send buffer in bytes: unsent plus unacknowledged data accepted from the application (default 4 MiB). */
  sendBufferBytes: number;
  /** Initial congestion window in bytes (default 10 × MSS). */
  initialCwnd: number;
  /** Upper bound of the congestion window in bytes (default 4 MiB). */
  maxCwnd: number;
  /** Coalesce small writes while data is unacknowledged (default true). */
  nagle: boolean;
  /** How long Nagle may hold a partial segment (default 40 ms). */
  nagleDelayMs: Millis;
  /** Delayed-ACK timer (default 40 ms; every 2nd full segment is ACKed at once). */
  delayedAckMs: Millis;
  /** Send a bare ACK after this long without sending anything (default 30 s; 0 disables). */
  keepaliveMs: Millis;
  /** Close a connection that heard nothing for this long (default 120 s; 0 disables). */
  idleTimeoutMs: Millis;
  /** How long a closed connection lingers to answer a retransmitted FIN (default 10 s). */
  timeWaitMs: Millis;
  minRtoMs: Millis;
  maxRtoMs: Millis;
  initialRtoMs: Millis;
  /** Consecutive retransmission timeouts before the connection is reset (default 12). */
  maxRetransmits: number;
  /** SYN transmissions before a dial fails (default 6). */
  maxSynRetries: number;
  /** Initial sequence number (default 0, as the reference). */
  isn: number;
  /**
   * The peer stops sending at an advertised window of 0 (a pilot-ts peer, proven by its capability
   * advert). The reference reads 0 as "no limit" (PROTOCOL.md §2.6), so while this is false the
   * window is never advertised below one unit, and data beyond the buffer is held unacknowledged
   * (SACKed) instead of dropped, which stops such a sender (default false).
   */
  peerHonoursZeroWindow: boolean;
}

export interface ConnectionStats {
  bytesSent: number;
  bytesRecv: number;
  segmentsSent: number;
  segmentsRecv: number;
  retransmits: number;
  fastRetransmits: number;
  timeouts: number;
  spuriousRetransmits: number;
  dupAcks: number;
  /** Tail loss probes sent (also counted in retransmits). */
  tailProbes: number;
  sackBlocksSent: number;
  sackBlocksRecv: number;
  srttMs: number;
  rttvarMs: number;
  rtoMs: number;
  cwnd: number;
  ssthresh: number;
  inFlight: number;
  inRecovery: boolean;
  peerWindow: number;
  recvWindow: number;
  oooBytes: number;
  /** Largest payload per segment this connection sends. */
  mss: number;
  /** Nagle's coalescing of small writes is on (off: setNoDelay). */
  nagle: boolean;
}

export interface ConnectionInfo {
  id: number;
  state: ConnState;
  localPort: number;
  remote: SocketAddr;
  stats: ConnectionStats;
}

export type EndpointEvent =
  /** A SYN on a listening port created a connection (the SYN-ACK is already queued). */
  | { readonly type: 'accepted'; readonly connId: number; readonly localPort: number; readonly remote: SocketAddr }
  /** Our dial got its SYN-ACK. */
  | { readonly type: 'connected'; readonly connId: number }
  /** New in-order data can be read with read(). */
  | { readonly type: 'readable'; readonly connId: number }
  /** The send buffer, once full, has room again. */
  | { readonly type: 'writable'; readonly connId: number }
  /** The peer finished sending: after the buffered data, read() yields end of stream. */
  | { readonly type: 'end'; readonly connId: number }
  /**
   * The connection is gone (its id is no longer valid after this). `cause`: what the peer's RST
   * said (a pilot-ts peer says why it refused or reset; absent otherwise).
   */
  | { readonly type: 'closed'; readonly connId: number; readonly reason: CloseReason; readonly cause?: ResetCause }
  /** A datagram arrived (any destination port; binding is not required). */
  | { readonly type: 'datagram'; readonly src: SocketAddr; readonly dstPort: number; readonly data: Uint8Array }
  /** A control pong answered one of our pings. */
  | { readonly type: 'pong'; readonly from: SocketAddr; readonly seq: number; readonly data: Uint8Array };

/** Where a connection puts the packets and events it produces. */
export interface ConnectionSink {
  transmit(packet: Packet): void;
  event(event: EndpointEvent): void;
}

export interface ConnectionParams {
  id: number;
  localAddr: Addr;
  localPort: number;
  remote: SocketAddr;
  options: ConnectionOptions;
  sink: ConnectionSink;
  /** The limit on bytes in flight shared by the connections to the same peer node. */
  flight?: { budget: PeerFlight; resume: FlightResume };
}
