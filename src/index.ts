import { RunningNode } from './daemon/node.js';
import { type NodeOptions, nodeConfig, nodeLogger } from './daemon/node-options.js';
import { EmbeddedNode } from './sdk/embedded.js';

export type { NodeOptions } from './daemon/node-options.js';

/**
 * Starts a whole node inside this process (identity, tunnel, transport, trust, registry session,
 * built-in services) on the daemon's home layout, and returns it with the API of `Driver`.
 * `close()` stops it. A home whose identity a running daemon or another node holds is refused.
 */
export async function createNode(options: NodeOptions = {}): Promise<EmbeddedNode> {
  const node = await RunningNode.start(nodeConfig(options), nodeLogger(options));
  return new EmbeddedNode(node);
}
export * from './sdk/index.js';
export { PilotError, isPilotError, toPilotError, IPC_ERROR_CODES, ipcErrorCode, pilotCodeOfIpc } from './errors.js';
export type { PilotErrorCode } from './errors.js';
export {
  parseAddr,
  formatAddr,
  makeAddr,
  addrEquals,
  parseSocketAddr,
  formatSocketAddr,
  ADDR_ZERO,
} from './protocol/address.js';
export type { Addr, SocketAddr } from './protocol/address.js';
export type { JsonObject, JsonValue } from './protocol/json.js';
