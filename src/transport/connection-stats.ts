import type { StreamReceiver } from './receiver.js';
import type { StreamSender } from './sender.js';
import type { ConnectionOptions, ConnectionStats } from './types.js';

/** Receive-side counters a connection keeps itself. */
export interface ReceiveCounters {
  segmentsRecv: number;
  bytesRecv: number;
  sackBlocksSent: number;
}

/** A snapshot of a connection's counters and congestion state (for `info` / `connections`). */
export function connectionStats(
  sender: StreamSender,
  receiver: StreamReceiver | undefined,
  recv: ReceiveCounters,
  opts: ConnectionOptions,
): ConnectionStats {
  return {
    ...sender.counters,
    ...recv,
    srttMs: sender.rtt.srtt,
    rttvarMs: sender.rtt.rttvar,
    rtoMs: sender.rtt.rto,
    cwnd: sender.cc.cwnd,
    ssthresh: sender.cc.ssthresh,
    inFlight: sender.inFlightBytes,
    inRecovery: sender.inRecovery,
    peerWindow: sender.peerWindowBytes,
    recvWindow: receiver?.windowBytes ?? opts.recvBufferBytes,
    oooBytes: receiver?.oooBytes ?? 0,
    mss: opts.mss,
    nagle: opts.nagle,
  };
}
