/** Counters exposed by the tunnel (datagrams, not application packets). */
export interface TunnelStats {
  bytesSent: number;
  bytesRecv: number;
  pktsSent: number;
  pktsRecv: number;
  /** Dropped datagrams and packets by reason. */
  dropped: Record<string, number>;
  /** Datagrams sent by frame kind: PILA, PILS, PILT, PILP, beacon, and `relay` for wrapped ones. */
  sent: Record<string, number>;
}

export function emptyStats(): TunnelStats {
  return { bytesSent: 0, bytesRecv: 0, pktsSent: 0, pktsRecv: 0, dropped: {}, sent: {} };
}

export function bump(counters: Record<string, number>, key: string, by = 1): void {
  counters[key] = (counters[key] ?? 0) + by;
}
