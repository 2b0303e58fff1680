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
