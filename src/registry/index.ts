export { RegistryServer, type RegistryServerOptions } from './server.js';
export { RegistryClient, checkReply, type RegistryClientOptions } from './client.js';
export { SqliteRegistryStore, openRegistryStore } from './sqlite-store.js';
export type {
  RegistryStore,
  NodeRecord,
  NewNode,
  NodePatch,
  HandshakeRequest,
  HandshakeResponse,
  BeaconRecord,
  AddRequestResult,
  StoreContents,
  TrustClaim,
  PendingHandshakeRequest,
} from './store.js';
export type { ReplicationOptions } from './replication.js';
export { registerChallenge, watchChallenge } from './challenges.js';
export type { ReplyErrorCode } from './request-error.js';
