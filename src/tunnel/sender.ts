import { encodePacket, encodePacketHeader, type Packet } from '../protocol/packet.js';
import { encodeBatchedHeader, encodePacketBatch, isBatchable } from '../protocol/packet-batch.js';
import { encodePilmHeader, encodePilsHeader, encodePilt, MAGIC_PILM, PILS_MIN_SIZE } from '../protocol/tunnel.js';
import { groupForBatches, SendBatcher } from './batcher.js';
import { isLoopbackHost } from './endpoint.js';
import type { Handshake } from './handshake.js';
import type { PeerBook } from './peer-book.js';
import type { PeerCrypto } from './peer-crypto.js';
import type { PeerState } from './peer-table.js';
import * as policy from './policy.js';

/**
 * The send path of packets: sealed one per PILS frame, several per PILM frame to a batching peer
 * (collected until `flush()`, which the driver calls when its synchronous run ends), plaintext PILT
 * with encryption off, or queued while the peer's key is missing.
 */
export class Sender {
  readonly #batcher: SendBatcher;
  #flush: (() => void) | undefined;
  /** The time of the run whose batched packets wait for `flush()`. */
  #batchNow = 0;

  constructor(
    private readonly book: PeerBook,
    private readonly handshake: Handshake,
  ) {
    this.#batcher = new SendBatcher(
      (node, packets) => this.#sendBatch(node, packets),
      (node, packets, err) => {
        book.out.countDropped('batch_error', packets);
        book.log.warn({ node, packets, err: String(err) }, 'packets to a node could not be sent');
      },
      (run) => {
        this.#flush = run;
      },
    );
  }

  /** Whether packets wait for `flush()`. */
  get flushPending(): boolean {
    return this.#flush !== undefined;
  }

  flush(): void {
    const run = this.#flush;
    this.#flush = undefined;
    run?.();
  }

  /** Sends one packet; false if there is no endpoint for the node. */
  send(nodeId: number, packet: Packet, now: number): boolean {
    const { book } = this;
    const peer = book.peers.get(nodeId);
    if (!peer?.endpoint) return false;
    // Silence counts only while we keep sending: a gap resets it.
    if (peer.unansweredSince === 0 || now - peer.lastPacketAt > policy.PATH_IDLE_MS) {
      peer.unansweredSince = now;
      peer.checkSince = 0;
    }
    peer.lastPacketAt = now;
    if (book.encrypt && peer.crypto) {
      if (peer.batching && !peer.relay) {
        this.#batchNow = now;
        this.#batcher.add(nodeId, packet);
      } else this.#sealOne(peer, peer.crypto, packet, now);
      return true;
    }
    const bytes = encodePacket(packet);
    if (!book.encrypt) {
      book.transmit(peer, encodePilt(bytes), 'PILT', now);
    } else {
      const queued = book.pending.add(nodeId, bytes, now);
      if (queued === 'refused') book.out.drop('queue_full', peer.endpoint, nodeId);
      if (queued === 'dropped_oldest') book.out.drop('queue_overflow', peer.endpoint, nodeId);
      if (peer.exchangeSince === 0 && !peer.relay) peer.exchangeSince = now;
      this.handshake.sendPila(peer, now);
    }
    return true;
  }

  forget(node: number): void {
    this.#batcher.forget(node);
  }

  clear(): void {
    this.#batcher.clear();
    this.#flush = undefined;
  }

  /** Header and payload are sealed as two pieces and sent as a gathered datagram: no copy. */
  #sealOne(peer: PeerState, crypto: PeerCrypto, packet: Packet, now: number): void {
    const { nonce, chunks } = crypto.send.sealParts([encodePacketHeader(packet), packet.payload]);
    this.book.prep.used(crypto, now);
    this.book.transmit(peer, [encodePilsHeader(this.book.nodeId, nonce), ...chunks], 'PILS', now);
  }

  /** The packets one run sent to a batching peer: as few PILM frames as fit its path (no CRC-32 to compute). */
  #sendBatch(node: number, packets: Packet[]): void {
    const now = this.#batchNow;
    const peer = this.book.peers.get(node);
    const crypto = peer?.crypto;
    // Gone or re-keying meanwhile: lost like any datagram (the transport retransmits).
    if (!peer?.endpoint || !crypto) return;
    // Switched to the relay meanwhile: relayed traffic stays one packet per frame, as in send().
    if (peer.relay) {
      for (const p of packets) this.#sealOne(peer, crypto, p, now);
      return;
    }
    const loopback = isLoopbackHost(peer.endpoint.host);
    const datagram = loopback ? policy.BATCH_DATAGRAM_LOOPBACK : policy.BATCH_DATAGRAM_PATH;
    for (const group of groupForBatches(packets, datagram - PILS_MIN_SIZE)) {
      // A batch of one is sealed from its header and payload, without a copy (fewer cipher calls
      // with a joined piece, but the copy made paced pings slower: 8 of 10 interleaved rounds).
      const only = group.length === 1 ? (group[0] as Packet) : undefined;
      // Too large for a batch's u16 length: sent alone as PILS (dropped there if UDP cannot carry it).
      if (only && !isBatchable(only)) {
        this.#sealOne(peer, crypto, only, now);
        continue;
      }
      const parts = only ? [encodeBatchedHeader(only), only.payload] : batchParts(group);
      const { nonce, chunks } = crypto.send.sealParts(parts, MAGIC_PILM);
      this.book.prep.used(crypto, now);
      this.book.transmit(peer, [encodePilmHeader(this.book.nodeId, nonce), ...chunks], 'PILM', now);
    }
  }
}

/** Payloads at least this large are sealed where they are; smaller packets are joined into one piece. */
const SEAL_IN_PLACE = 2048;

/**
 * The plaintext of a PILM frame as pieces to seal in one pass: large payloads are not copied into
 * a joined body (no second buffer of the datagram's size per frame), while runs of small packets
 * still become one piece each, since every piece costs a cipher call.
 */
export function batchParts(group: readonly Packet[]): Uint8Array[] {
  const parts: Uint8Array[] = [];
  let from = 0;
  for (let i = 0; i < group.length; i++) {
    const p = group[i] as Packet;
    if (p.payload.length < SEAL_IN_PLACE) continue;
    if (i > from) parts.push(encodePacketBatch(group.slice(from, i)));
    parts.push(encodeBatchedHeader(p), p.payload);
    from = i + 1;
  }
  if (from < group.length) parts.push(encodePacketBatch(from === 0 ? group : group.slice(from)));
  return parts;
}
