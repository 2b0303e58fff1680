import type { PilotError } from './errors.js';
import type { Addr } from './protocol/address.js';
import type { DaemonInfo, OutgoingEntry, PendingEntry, TrustedEntry } from './protocol/ipc-info.js';
import type { IpcHandshakeOp } from './protocol/ipc.js';
import type { JsonObject } from './protocol/json.js';
import type {
  Datagram,
  DialOptions,
  PilotConn,
  PilotListener,
  PilotNetwork,
  RawConn,
  RawConnEvents,
} from './pilot-net.js';

/**
 * A pilot node as an application uses it. The SDK's `Driver` implements it over a daemon's IPC
 * socket, the embedded node inside the calling process: code written against this interface runs
 * on either unchanged.
 */

export interface DatagramOptions {
  /** Only datagrams sent to this destination port. */
  port?: number;
  signal?: AbortSignal;
}

export interface Health {
  ok: boolean;
  uptimeSecs: number;
  nodeId: number;
  address: string;
}

export interface PilotNode extends PilotNetwork {
  readonly localAddr: Addr;
  /** True once the node (or the connection to it) has closed. */
  readonly closed: boolean;
  info(): Promise<DaemonInfo>;
  health(): Promise<Health>;
  dial(addr: Addr | string, port: number, options?: DialOptions): Promise<PilotConn>;
  listen(port: number): Promise<PilotListener>;
  sendTo(addr: Addr | string, port: number, data: Uint8Array): Promise<void>;
  /** Datagrams received from now on. */
  datagrams(options?: DatagramOptions): AsyncIterable<Datagram>;
  handshake(nodeId: number, justification?: string): Promise<JsonObject>;
  approve(nodeId: number): Promise<JsonObject>;
  reject(nodeId: number, reason?: string): Promise<JsonObject>;
  untrust(nodeId: number): Promise<JsonObject>;
  pending(): Promise<PendingEntry[]>;
  trusted(): Promise<TrustedEntry[]>;
  outgoing(): Promise<OutgoingEntry[]>;
  resolveHostname(name: string): Promise<JsonObject>;
  setHostname(name: string): Promise<JsonObject>;
  setVisibility(isPublic: boolean): Promise<JsonObject>;
  setTags(tags: string[]): Promise<JsonObject>;
  setWebhook(url: string): Promise<JsonObject>;
  setTaskExec(enabled: boolean): Promise<JsonObject>;
  deregister(): Promise<JsonObject>;
  /** Closes any connection of the node by id (as `pilotctl disconnect`). */
  disconnect(connId: number): Promise<void>;
  close(): Promise<void>;

  on(event: 'datagram', listener: (datagram: Datagram) => void): this;
  /** A failure no request was waiting for (usually a failed write of a datagram). */
  on(event: 'error', listener: (err: PilotError) => void): this;
  /** The node stopped (or the connection to it closed); `err` is null after `close()`. */
  on(event: 'close', listener: (err: PilotError | null) => void): this;
  once(event: 'datagram', listener: (datagram: Datagram) => void): this;
  once(event: 'error', listener: (err: PilotError) => void): this;
  once(event: 'close', listener: (err: PilotError | null) => void): this;
  off(event: 'datagram', listener: (datagram: Datagram) => void): this;
  off(event: 'error', listener: (err: PilotError) => void): this;
  off(event: 'close', listener: (err: PilotError | null) => void): this;
}

/**
 * What a running node composition offers its hosts: the IPC server turns these into the frames
 * of PROTOCOL.md §8, the embedded node into the `PilotNode` API. Replies are the JSON objects of
 * the IPC protocol, so both hosts answer alike.
 */
export interface NodeOperations {
  listen(port: number): Promise<PilotListener>;
  dial(addr: Addr, port: number, options?: DialOptions): Promise<PilotConn>;
  sendTo(addr: Addr, port: number, data: Uint8Array): Promise<void>;
  /** A dial whose connection is run without a stream object (see NetStack.dialRaw). */
  dialRaw(addr: Addr, port: number, options: DialOptions, events: RawConnEvents): Promise<RawConn>;
  /** Binds a port whose connections are run without a stream object (see PilotNetwork.serveRaw). */
  serveRaw(port: number, accept: (conn: RawConn) => RawConnEvents): Promise<PilotListener>;
  /** Resets any connection of the node by id (as `pilotctl disconnect`); false if there is none. */
  disconnect(connId: number): boolean;
  info(): JsonObject;
  handshake(op: IpcHandshakeOp): Promise<JsonObject>;
  resolveHostname(name: string): Promise<JsonObject>;
  setHostname(name: string): Promise<JsonObject>;
  setVisibility(isPublic: boolean): Promise<JsonObject>;
  deregister(): Promise<JsonObject>;
  setTags(tags: readonly string[]): Promise<JsonObject>;
  setWebhook(url: string): Promise<JsonObject>;
  setTaskExec(enabled: boolean): Promise<JsonObject>;
}

/** A started node composition. */
export interface NodeCore extends NodeOperations {
  readonly localAddr: Addr;
  /** Every datagram that arrives for a port of this node; returns the unsubscribe. */
  onDatagram(handler: (d: Datagram) => void): () => void;
  /** Stops everything, in reverse order of start. */
  close(): Promise<void>;
}
