import type { Identity } from '../crypto/index.js';
import type { Logger } from '../log.js';
import type { Packet } from '../protocol/packet.js';
import type { RegistryKeys } from '../registry-keys.js';
import type { DropReason } from './stats.js';

export interface TunnelOptions {
  /** "host:port", ":0", "127.0.0.1:0", "[::1]:0"; `[::]:port` is dual-stack. */
  listen: string;
  /** Ed25519 identity of this node. */
  identity: Identity;
  /** Default true. Off: PILT both ways, key-exchange frames ignored. */
  encrypt?: boolean;
  /** Beacon "host:port". */
  beacon?: string;
  /** The Ed25519 keys the registry holds for nodes, checked against each peer's PILA. */
  keys: RegistryKeys;
  log?: Logger;
}

export interface TunnelPeerInfo {
  nodeId: number;
  endpoint: string;
  encrypted: boolean;
  authenticated: boolean;
  relay: boolean;
}

export interface EstablishedEvent {
  peerNodeId: number;
  authenticated: boolean;
  rekeyed: boolean;
  relay: boolean;
}

export interface DroppedEvent {
  reason: DropReason;
  fromNode?: number;
  endpoint: string;
}

export interface TunnelEvents {
  packet: [packet: Packet, fromNode: number];
  established: [event: EstablishedEvent];
  'peer-added': [event: { peerNodeId: number; endpoint: string }];
  'endpoint-changed': [event: { peerNodeId: number; endpoint: string }];
  'relay-activated': [event: { peerNodeId: number }];
  /** A relayed peer is reachable directly again: packets to it go direct from now on. */
  'direct-upgraded': [event: { peerNodeId: number; endpoint: string }];
  /** The beacon reported the endpoint it sees this socket at (after every Discover). */
  'observed-endpoint': [event: { endpoint: string }];
  'nonce-replay': [event: { peerNodeId: number; counter: bigint }];
  dropped: [event: DroppedEvent];
}
