export { DATAGRAM_QUEUE_SIZE } from './datagram-inbox.js';
export { Driver, DEFAULT_DIAL_TIMEOUT_MS, MAX_DATAGRAM } from './driver.js';
export type { ConnectOptions, DatagramOptions, Health } from './driver.js';
export { Conn, MAX_SEND_CHUNK, DEFAULT_MAX_UNREAD } from './conn.js';
export type { ConnEndpoints, ConnLink, ConnOptions } from './conn.js';
export { Listener, LISTENER_BACKLOG } from './listener.js';
export { AbortError } from './abort.js';
export { NOT_RUNNING_HINT } from './ipc-client.js';
export type { DaemonInfo, PeerInfo, ConnInfo, OutgoingEntry, PendingEntry, TrustedEntry } from './info.js';
export { serveHttp, createConnection, PilotAgent } from './http.js';
export type { CreateConnection, HttpDialer, PilotHttpTarget } from './http.js';
export type { PilotConn, PilotListener, PilotNetwork, PilotNode, Datagram, DialOptions } from './types.js';
export { EmbeddedNode } from './embedded.js';
export {
  sendMessage,
  sendFile,
  inbox,
  incoming,
  type DataDialer,
  type InboxMessage,
  type IncomingOptions,
  type MessageType,
  type ReceivedFile,
  type SendMessageOptions,
  type SendOptions,
  type SendResult,
} from './dataexchange.js';
export {
  subscribe,
  publish,
  openPublisher,
  EVENT_STREAM_PORT,
  type EventDialer,
  type PilotEvent,
  type Publisher,
  type PublishOptions,
  type SubscribeOptions,
  type Subscription,
} from './events.js';
export { Tasks, TASK_PORT, type TaskTransport, type TaskSummary, type SubmitResult, type TaskResult } from './tasks.js';
