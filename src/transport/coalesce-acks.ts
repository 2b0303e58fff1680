import { Flag, Proto, type Packet } from '../protocol/packet.js';
import { seqLt } from './seq.js';

const isPureAck = (p: Packet): boolean => p.protocol === Proto.Stream && p.flags === Flag.ACK && p.payload.length === 0;

/**
 * Drops pure ACKs that a later packet of the same batch on the same connection supersedes with a
 * higher cumulative ACK: in bulk transfer this removes most ACK packets (each costs a seal, a
 * datagram and an open on both sides). Duplicate ACKs (same ack number) are kept, since a Go
 * sender counts them for fast retransmit.
 */
export function coalesceAcks(batch: Packet[]): Packet[] {
  if (batch.length < 2) return batch;
  // Connection key: node, then both ports in one number (no string per packet).
  const highest = new Map<number, Map<number, number>>();
  const keep: boolean[] = new Array<boolean>(batch.length).fill(true);
  let dropped = 0;
  for (let i = batch.length - 1; i >= 0; i--) {
    const p = batch[i] as Packet;
    if (p.protocol !== Proto.Stream || !(p.flags & Flag.ACK)) continue;
    let byPorts = highest.get(p.dst.node);
    if (!byPorts) highest.set(p.dst.node, (byPorts = new Map()));
    const ports = p.dstPort * 0x10000 + p.srcPort;
    const later = byPorts.get(ports);
    if (later !== undefined && isPureAck(p) && seqLt(p.ack, later)) {
      keep[i] = false;
      dropped++;
    }
    if (later === undefined || seqLt(later, p.ack)) byPorts.set(ports, p.ack);
  }
  return dropped === 0 ? batch : batch.filter((_, i) => keep[i]);
}
