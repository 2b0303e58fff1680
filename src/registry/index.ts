export { RegistryServer, type RegistryServerOptions } from './server.js';
export { RegistryClient, checkReply, type RegistryClientOptions } from './client.js';
export { SqliteRegistryStore } from './sqlite-store.js';
export { embeddedStore, openRegistryStore } from './embedded-store.js';
export type {
  RegistryStore,
  SyncRegistryStore,
  SharedRegistryState,
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
