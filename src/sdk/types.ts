/** The SDK's stream interfaces; defined once, below every layer that implements or uses them. */
export type { Datagram, DialOptions, PilotConn, PilotListener, PilotNetwork } from '../pilot-net.js';
export type { DatagramOptions, Health, PilotNode } from '../pilot-node.js';
