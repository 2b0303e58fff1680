import { makeAddr } from '../../protocol/address.js';
import { TransportEndpoint, type EndpointOptions } from '../endpoint.js';
import type { SimNetwork, SimNode } from './network.js';

export interface EndpointNodeOptions extends Omit<EndpointOptions, 'localAddr'> {
  /** Network id of the node's address (default 1). */
  network?: number;
  name?: string;
}

/** Adds a node running a TransportEndpoint at address `network:nodeId`. */
export function addEndpointNode(
  net: SimNetwork,
  nodeId: number,
  options: EndpointNodeOptions = {},
): SimNode<TransportEndpoint> {
  const { network = 1, name = `n${nodeId}`, ...endpointOptions } = options;
  const localAddr = makeAddr(network, nodeId);
  return net.addNode(name, localAddr, new TransportEndpoint({ ...endpointOptions, localAddr }));
}
