/**
 * Why the tunnel dropped a datagram or a packet: the keys of `TunnelStats.dropped` and the
 * `reason` of a `dropped` event. Every reason the tunnel reports is listed here.
 */
export type DropReason =
  // Frames that do not decode, or arrive where they have no meaning.
  | 'malformed'
  | 'bad_checksum'
  | 'not_from_beacon'
  | 'unexpected_beacon_message'
  // Encryption policy: plaintext while encrypting, key exchange while not.
  | 'plaintext'
  | 'encryption_off'
  | 'anonymous_key_exchange'
  // Key exchange (PILA) refused: the frame itself, or its check against the registry key.
  | 'relay_sender_mismatch'
  | 'own_node_id'
  | 'stale_key_exchange'
  | 'bad_key'
  | 'unknown_key'
  | 'key_mismatch'
  | 'bad_signature'
  | 'lookup_busy'
  | 'registry_unreachable'
  // Sealed frames (PILS, PILM) refused: no key yet, or the AEAD and replay window say no.
  | 'no_context'
  | 'auth_failed'
  | 'replay'
  | 'too_old'
  // The inner packet is not bound to the tunnel sender and to us.
  | 'spoofed_source'
  | 'wrong_destination'
  // Outgoing: too large for UDP, no route, refused by the OS, or never sent from a queue.
  | 'too_large'
  | 'unreachable'
  | 'send_error'
  | 'batch_error'
  | 'queue_full'
  | 'queue_overflow'
  | 'queue_expired';

/** Kinds of datagram the tunnel sends (the keys of `TunnelStats.sent`, with `relay` for wrapped ones). */
export type SentKind = 'PILA' | 'PILS' | 'PILM' | 'PILT' | 'PILP' | 'beacon' | 'probe';

/** Counters exposed by the tunnel (datagrams, not application packets). */
export interface TunnelStats {
  bytesSent: number;
  bytesRecv: number;
  pktsSent: number;
  pktsRecv: number;
  /** Dropped datagrams and packets by reason. */
  dropped: Partial<Record<DropReason, number>>;
  /** Datagrams sent by frame kind: PILA, PILS, PILT, PILP, beacon, and `relay` for wrapped ones. */
  sent: Partial<Record<SentKind | 'relay', number>>;
}

export function emptyStats(): TunnelStats {
  return { bytesSent: 0, bytesRecv: 0, pktsSent: 0, pktsRecv: 0, dropped: {}, sent: {} };
}

export function bump<K extends string>(counters: Partial<Record<K, number>>, key: K, by = 1): void {
  counters[key] = (counters[key] ?? 0) + by;
}
