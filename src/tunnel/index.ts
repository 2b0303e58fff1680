export {
  Tunnel,
  type TunnelOptions,
  type TunnelPeerInfo,
  type TunnelEvents,
  type EstablishedEvent,
  type DroppedEvent,
} from './tunnel.js';
export type { DropReason, TunnelStats } from './stats.js';
export { parseEndpoint, formatEndpoint, parseListenAddress, type UdpEndpoint, type ListenAddress } from './endpoint.js';
