/** The daemon's JSON replies as the SDK returns them; defined with the IPC codecs, shared with the embedded node. */
export {
  parseDaemonInfo,
  parseOutgoing,
  parsePending,
  parseTrusted,
  type ConnInfo,
  type DaemonInfo,
  type OutgoingEntry,
  type PeerInfo,
  type PendingEntry,
  type TrustedEntry,
} from '../protocol/ipc-info.js';
