// API stub: implementation in progress.
import type { Addr, SocketAddr } from '../protocol/address.js';
import type { Packet } from '../protocol/packet.js';
import type { ConnectionInfo, ConnectionOptions, EndpointEvent, Millis } from './types.js';

export interface EndpointOptions {
  /** This node's virtual address: the source of every packet it emits. */
  localAddr: Addr;
  connection?: Partial<ConnectionOptions>;
  maxConnsPerPort?: number;
  maxConnsTotal?: number;
}

/**
 * Sans-I/O transport for one node: every stream connection, listener, datagram and ping.
 * Feed it packets addressed to this node and the current time; take packets to send
 * with pollTransmit(), events with pollEvent(), and call handleTimeout() at nextTimeout().
 */
export class TransportEndpoint {
  constructor(readonly options: EndpointOptions) {}
  listen(_port: number): void { throw new Error('not implemented'); }
  unlisten(_port: number): void { throw new Error('not implemented'); }
  dial(_remote: SocketAddr, _now: Millis): number { throw new Error('not implemented'); }
  write(_connId: number, _data: Uint8Array, _now: Millis): number { throw new Error('not implemented'); }
  read(_connId: number, _maxBytes?: number): Uint8Array | null { throw new Error('not implemented'); }
  close(_connId: number, _now: Millis): void { throw new Error('not implemented'); }
  abort(_connId: number, _now: Millis): void { throw new Error('not implemented'); }
  sendDatagram(_dst: SocketAddr, _data: Uint8Array, _now: Millis, _srcPort?: number): void { throw new Error('not implemented'); }
  handlePacket(_packet: Packet, _now: Millis): void { throw new Error('not implemented'); }
  handleTimeout(_now: Millis): void { throw new Error('not implemented'); }
  pollTransmit(): Packet | undefined { throw new Error('not implemented'); }
  pollEvent(): EndpointEvent | undefined { throw new Error('not implemented'); }
  nextTimeout(): Millis | undefined { throw new Error('not implemented'); }
  connection(_connId: number): ConnectionInfo | undefined { throw new Error('not implemented'); }
  connections(): ConnectionInfo[] { throw new Error('not implemented'); }
}
