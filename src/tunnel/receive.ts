import { BROADCAST_NODE } from '../protocol/address.js';
import { decodePacket, type Packet } from '../protocol/packet.js';
import { decodePacketBatch } from '../protocol/packet-batch.js';
import { decodePilt, MAGIC_PILM, type PilsFrame } from '../protocol/tunnel.js';
import type { Handshake } from './handshake.js';
import type { PeerBook } from './peer-book.js';
import type { PeerCrypto } from './peer-crypto.js';
import type { PeerState } from './peer-table.js';
import * as policy from './policy.js';
import type { Origin } from './policy.js';

/** A sealed one-byte body: a path probe (request or reply), handled by the path keeper. */
export type ProbeHandler = (peer: PeerState, crypto: PeerCrypto, kind: number, origin: Origin, now: number) => void;

/**
 * The receive path of peer traffic: sealed frames (PILS, PILM) opened with the peer's context,
 * plaintext PILT with encryption off, and every inner packet bound to its tunnel sender and to us.
 * An authenticated frame is also what moves a peer's endpoint and path.
 */
export class Receiver {
  constructor(
    private readonly book: PeerBook,
    private readonly handshake: Handshake,
    private readonly onProbe: ProbeHandler,
  ) {}

  /** A PILS frame, or with `batch` a PILM frame (several packets). */
  onSealed(frame: PilsFrame, origin: Origin, batch: boolean, now: number): void {
    const { book } = this;
    const node = frame.senderNode;
    if (origin.relayFrom !== undefined && origin.relayFrom !== node)
      return book.out.drop('relay_sender_mismatch', origin.endpoint, node);
    const peer = book.peers.get(node);
    const crypto = peer?.crypto;
    if (!peer || !crypto) {
      // Possibly we restarted, or the frame overtook the PILA: keep it briefly and show our key.
      book.early.add(node, { frame, origin, batch }, now);
      book.out.drop('no_context', origin.endpoint, node);
      return this.handshake.sendRecoveryPila(node, origin, now);
    }
    const opened = crypto.open(frame.nonce, frame.sealed, batch ? MAGIC_PILM : undefined);
    if (!opened.ok) {
      const code = opened.error.code;
      if (code === 'replay')
        book.out.emit({
          type: 'nonce-replay',
          args: [{ peerNodeId: node, counter: Buffer.from(frame.nonce).readBigUInt64BE(4) }],
        });
      book.out.drop(code === 'truncated' ? 'malformed' : code, origin.endpoint, node);
      // The peer may hold a newer key whose PILA we missed; offer ours to its known address only.
      if (code === 'auth_failed' && peer.endpoint)
        this.handshake.sendRecoveryPila(
          node,
          { endpoint: peer.endpoint, relayFrom: peer.relay ? node : undefined },
          now,
        );
      return;
    }
    // The AEAD and the replay window proved a fresh frame from the sender: follow a NAT rebinding,
    // and the path it came by (a relayed peer heard directly is reachable directly again).
    peer.unansweredSince = 0;
    peer.checkSince = 0;
    if (origin.relayFrom === undefined) {
      book.updateEndpoint(peer, origin.endpoint);
      peer.lastDirectAt = now;
      book.leaveRelay(peer);
    } else if (now - peer.lastDirectAt > policy.SILENCE_MS) {
      // Frames the peer relayed before it saw the direct path work again keep coming for a while:
      // while direct ones arrive too, they do not move the path back (both sides would flap).
      book.markRelay(peer, now);
    }
    peer.lastActive = now;
    book.prep.used(crypto, now);
    if (!batch && opened.value.length === 1) return this.onProbe(peer, crypto, opened.value[0] as number, origin, now);
    let plaintexts: Uint8Array[] = [opened.value];
    if (batch) {
      const split = decodePacketBatch(opened.value);
      if (!split.ok) return book.out.drop('malformed', origin.endpoint, node);
      plaintexts = split.value;
    }
    peer.lastPacketAt = now;
    for (const bytes of plaintexts) {
      // AES-GCM already proved these bytes intact: the CRC-32 inside cannot add anything.
      const packet = this.#checkInner(bytes, node, origin, false);
      if (packet) book.out.emit({ type: 'packet', args: [packet, node] });
    }
  }

  onPilt(data: Uint8Array, origin: Origin, now: number): void {
    const { book } = this;
    if (book.encrypt) return book.out.drop('plaintext', origin.endpoint, origin.relayFrom);
    const frame = decodePilt(data);
    if (!frame.ok) return book.out.drop('malformed', origin.endpoint);
    const probe = decodePacket(frame.value.packet);
    if (!probe.ok)
      return book.out.drop(probe.error.code === 'bad_checksum' ? 'bad_checksum' : 'malformed', origin.endpoint);
    const node = probe.value.src.node;
    const packet = this.#checkInner(frame.value.packet, origin.relayFrom ?? node, origin);
    if (!packet) return;
    const peer = book.adopt(node, origin, now);
    if (origin.relayFrom !== undefined) book.markRelay(peer, now);
    peer.lastActive = now;
    book.out.emit({ type: 'packet', args: [packet, node] });
  }

  /** Decodes the inner packet and binds it to the tunnel sender and to us (§14 #9). */
  #checkInner(bytes: Uint8Array, senderNode: number, origin: Origin, verifyChecksum = true): Packet | undefined {
    const { out, nodeId } = this.book;
    const decoded = decodePacket(bytes, { verifyChecksum });
    if (!decoded.ok) {
      out.drop(decoded.error.code === 'bad_checksum' ? 'bad_checksum' : 'malformed', origin.endpoint, senderNode);
      return undefined;
    }
    const packet = decoded.value;
    if (packet.src.node !== senderNode) {
      out.drop('spoofed_source', origin.endpoint, senderNode);
      return undefined;
    }
    if (packet.dst.node !== nodeId && packet.dst.node !== BROADCAST_NODE) {
      out.drop('wrong_destination', origin.endpoint, senderNode);
      return undefined;
    }
    return packet;
  }
}
