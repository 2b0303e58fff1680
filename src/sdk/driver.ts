import { EventEmitter } from 'node:events';
import { DEFAULT_SOCKET } from '../config/home.js';
import { PilotError } from '../errors.js';
import { parseAddr, type Addr } from '../protocol/address.js';
import type { IpcCmdName, IpcMessage } from '../protocol/ipc.js';
import type { JsonObject } from '../protocol/json.js';
import { MAX_DATAGRAM_PAYLOAD } from '../protocol/tunnel.js';
import { abortError, withDeadline } from './abort.js';
import { DatagramInbox, healthOf } from './datagram-inbox.js';
import { TrustCalls } from './trust-calls.js';
import { assignConnId, Conn, type ConnEndpoints, type ConnLink } from './conn.js';
import { fromDaemonError } from './daemon-errors.js';
import { parseDaemonInfo, type DaemonInfo, type OutgoingEntry, type PendingEntry, type TrustedEntry } from './info.js';
import { DaemonReplyError, IpcClient, type IpcClientHandlers, type IpcPush } from './ipc-client.js';
import { Listener } from './listener.js';
import type { Datagram, DialOptions } from '../pilot-net.js';
import type { DatagramOptions, Health, PilotNode } from '../pilot-node.js';
import { checkPort, checkU32, target, toAddr } from './validate.js';

export const DEFAULT_DIAL_TIMEOUT_MS = 30_000;
/** Datagrams a `datagrams()` iterator holds for a slow consumer; newer ones are dropped. */
/** Largest datagram payload a daemon sends: what an encrypted packet can carry on every path (PROTOCOL.md §7.12). */
export const MAX_DATAGRAM = MAX_DATAGRAM_PAYLOAD;

export interface ConnectOptions {
  signal?: AbortSignal;
  /** Unread bytes a connection may accumulate before it is destroyed (default 8 MiB). */
  maxUnread?: number;
}

export type { DatagramOptions, Health };

export interface Driver {
  on(event: 'datagram', listener: (datagram: Datagram) => void): this;
  /** A daemon Error no request was waiting for (usually a failed Send or SendTo). */
  on(event: 'error', listener: (err: PilotError) => void): this;
  /** The IPC connection closed; `err` is null after `close()`. */
  on(event: 'close', listener: (err: PilotError | null) => void): this;
  once(event: 'datagram', listener: (datagram: Datagram) => void): this;
  once(event: 'error', listener: (err: PilotError) => void): this;
  once(event: 'close', listener: (err: PilotError | null) => void): this;
  off(event: 'datagram', listener: (datagram: Datagram) => void): this;
  off(event: 'error', listener: (err: PilotError) => void): this;
  off(event: 'close', listener: (err: PilotError | null) => void): this;
}

/** A client of a pilot daemon's IPC socket (PROTOCOL.md §8). */
// biome-ignore lint/suspicious/noUnsafeDeclarationMerging: the interface above only types the events of EventEmitter's own methods.
export class Driver extends EventEmitter implements PilotNode {
  private client: IpcClient | null = null;
  private address: Addr = { network: 0, node: 0 };
  private readonly conns = new Map<number, Conn>();
  private readonly portListeners = new Map<number, Listener>();
  /** Ports the daemon bound for us; they stay bound after a local Listener close. */
  private readonly boundPorts = new Set<number>();
  private readonly inbox = new DatagramInbox();
  private readonly trust = new TrustCalls((op, context) => this.json({ cmd: 'Handshake', op }, 'HandshakeOK', context));
  private ended = false;
  /** The daemon's IPC extensions (InfoOK `ipc_features`; none from the reference): dial_data, dial_cancel. */
  private features: ReadonlySet<string> = new Set();
  private readonly link: ConnLink = {
    send: (connId, data) => this.ipc().send({ cmd: 'Send', connId, data }),
    onDrain: (callback) => this.ipc().onDrain(callback),
    close: (connId) => this.closeConn(connId).catch(() => undefined),
    release: (conn) => {
      if (this.conns.get(conn.id) === conn) this.conns.delete(conn.id);
    },
  };

  private constructor(private readonly maxUnread: number | undefined) {
    super();
  }

  /** Connects to the daemon at `socketPath` (default `$PILOT_SOCKET`, else /tmp/pilot.sock). */
  static async connect(socketPath?: string, options: ConnectOptions = {}): Promise<Driver> {
    const path = socketPath ?? (process.env.PILOT_SOCKET || DEFAULT_SOCKET);
    const driver = new Driver(options.maxUnread);
    driver.client = await IpcClient.connect(path, driver.handlers(), options.signal);
    try {
      const info = await withDeadline(driver.info(), {
        signal: options.signal,
        timeoutMs: DEFAULT_DIAL_TIMEOUT_MS,
        onTimeout: () => new PilotError('timeout', `daemon at ${path} did not answer Info`),
        onAbandon: () => undefined,
      });
      const parsed = parseAddr(info.address);
      driver.address = parsed.ok ? parsed.value : { network: 0, node: info.node_id };
      driver.features = new Set(info.ipc_features ?? []);
    } catch (err) {
      await driver.close();
      throw err;
    }
    return driver;
  }

  get localAddr(): Addr {
    return this.address;
  }

  get closed(): boolean {
    return this.ended;
  }

  async info(): Promise<DaemonInfo> {
    return parseDaemonInfo(await this.json({ cmd: 'Info' }, 'InfoOK', 'info'));
  }

  health(): Promise<Health> {
    return healthOf(() => this.info(), this.address);
  }

  async dial(addr: Addr | string, port: number, options: DialOptions = {}): Promise<Conn> {
    const remoteAddr = toAddr(addr);
    checkPort(port);
    const data = options.data !== undefined && options.data.length > 0 ? options.data : undefined;
    if (data === undefined) return this.dialWith({ cmd: 'Dial', addr: remoteAddr, port }, options);
    if (this.features.has('dial_data'))
      return this.dialWith({ cmd: 'DialData', addr: remoteAddr, port, data }, options);
    // A daemon without the extension (the reference): Dial, then the data as a Send.
    const conn = await this.dialWith({ cmd: 'Dial', addr: remoteAddr, port }, options);
    conn.write(data);
    return conn;
  }

  /**
   * One Dial or DialData. A dial the caller gives up on (signal, timeout) is cancelled in a daemon
   * that can (DialCancel: it abandons the dial, or resets the connection if it was made); with one
   * that cannot, a DialOK that arrives afterwards is answered with a Close.
   */
  private async dialWith(msg: IpcMessage & { cmd: 'Dial' | 'DialData' }, options: DialOptions): Promise<Conn> {
    // Only for messages: formatting it on every dial would come before the request is written.
    const where = (): string => target(msg.addr, msg.port);
    if (options.signal?.aborted) throw abortError(options.signal);
    const timeoutMs = options.timeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS;
    const client = this.ipc();
    let abandoned = false;
    let cancelled = false;
    const before = client.dialsSent;
    const ends = { id: 0, localAddr: this.address, localPort: 0, remoteAddr: msg.addr, remotePort: msg.port };
    let made: Conn | undefined;
    let answered = false;
    const reply = client.request(msg, 'DialOK', (answer): Conn | null => {
      answered = true;
      if (answer.cmd !== 'DialOK') throw new PilotError('protocol', `unexpected ${answer.cmd} reply to ${msg.cmd}`);
      if (abandoned) {
        if (!cancelled) void this.link.close(answer.connId);
        return null;
      }
      const conn = made ?? this.newConn(ends);
      conn[assignConnId](answer.connId);
      this.conns.set(conn.id, conn);
      return conn;
    });
    // The Conn is made once the request is written, while the daemon dials: a Duplex costs tens of
    // microseconds on a process that was idle, which would otherwise come between the DialOK and
    // the caller.
    setImmediate(() => {
      if (!answered && !abandoned) made = this.newConn(ends);
    });
    // The daemon's number for this dial (unless the request never left: it then fails at once).
    const seq = client.dialsSent > before ? client.dialsSent : undefined;
    try {
      const conn = await withDeadline(reply, {
        signal: options.signal,
        timeoutMs,
        onTimeout: () => new PilotError('timeout', `dial ${where()}: timed out after ${timeoutMs} ms`),
        onAbandon: () => {
          abandoned = true;
          if (seq === undefined || !this.features.has('dial_cancel') || client.isClosed) return;
          client.send({ cmd: 'DialCancel', dialSeq: seq });
          cancelled = true;
        },
      });
      if (conn === null) throw new PilotError('internal', `dial ${where()}: connection lost`);
      return conn;
    } catch (err) {
      throw err instanceof DaemonReplyError ? fromDaemonError(err, `dial ${where()}`, 'connection_failed') : err;
    }
  }

  async listen(port: number): Promise<Listener> {
    checkPort(port);
    const existing = this.portListeners.get(port);
    if (existing) throw new PilotError('already_exists', `port ${port} is already being listened on`);
    if (this.boundPorts.has(port)) return this.openListener(port);
    const bind = this.ipc().request(
      { cmd: 'Bind', port },
      'BindOK',
      () => {
        this.boundPorts.add(port);
        return this.openListener(port);
      },
      (msg) => msg.cmd === 'BindOK' && msg.port === port,
    );
    return bind.catch((err: unknown) => {
      throw fromDaemonError(err, `listen on port ${port}`, 'connection_failed');
    });
  }

  async sendTo(addr: Addr | string, port: number, data: Uint8Array): Promise<void> {
    const to = toAddr(addr);
    checkPort(port);
    if (data.length > MAX_DATAGRAM)
      throw new PilotError(
        'too_large',
        `datagram of ${data.length} bytes exceeds the maximum of ${MAX_DATAGRAM} bytes`,
      );
    const client = this.ipc();
    client.send({ cmd: 'SendTo', addr: to, port, data });
    await new Promise<void>((resolve, reject) => client.onDrain((err) => (err ? reject(err) : resolve())));
  }

  /** Datagrams received from now on (RecvFrom is broadcast to every client of the daemon). */
  datagrams(options: DatagramOptions = {}): AsyncIterable<Datagram> {
    return this.inbox.open(options);
  }

  handshake(nodeId: number, justification = ''): Promise<JsonObject> {
    return this.trust.handshake(nodeId, justification);
  }

  approve(nodeId: number): Promise<JsonObject> {
    return this.trust.approve(nodeId);
  }

  reject(nodeId: number, reason = ''): Promise<JsonObject> {
    return this.trust.reject(nodeId, reason);
  }

  untrust(nodeId: number): Promise<JsonObject> {
    return this.trust.untrust(nodeId);
  }

  pending(): Promise<PendingEntry[]> {
    return this.trust.pending();
  }

  trusted(): Promise<TrustedEntry[]> {
    return this.trust.trusted();
  }

  /** The handshake requests this node sent and what became of them (a pilot-ts daemon's extension). */
  async outgoing(): Promise<OutgoingEntry[]> {
    if (!this.features.has('handshakes'))
      throw new PilotError(
        'unavailable',
        'this daemon does not list the handshake requests it sent',
        'the Go reference daemon keeps no such list',
      );
    return this.trust.outgoing();
  }

  async resolveHostname(name: string): Promise<JsonObject> {
    if (name === '') throw new PilotError('invalid_argument', 'hostname is empty');
    return this.json({ cmd: 'ResolveHostname', hostname: name }, 'ResolveHostnameOK', `resolve ${name}`, 'not_found');
  }

  async setHostname(name: string): Promise<JsonObject> {
    return this.json({ cmd: 'SetHostname', hostname: name }, 'SetHostnameOK', 'set hostname');
  }

  async setVisibility(isPublic: boolean): Promise<JsonObject> {
    return this.json({ cmd: 'SetVisibility', public: isPublic }, 'SetVisibilityOK', 'set visibility');
  }

  async setTags(tags: string[]): Promise<JsonObject> {
    if (tags.length > 3) throw new PilotError('invalid_argument', `at most 3 tags, got ${tags.length}`);
    return this.json({ cmd: 'SetTags', tags }, 'SetTagsOK', 'set tags');
  }

  async setWebhook(url: string): Promise<JsonObject> {
    return this.json({ cmd: 'SetWebhook', url }, 'SetWebhookOK', 'set webhook');
  }

  async setTaskExec(enabled: boolean): Promise<JsonObject> {
    return this.json({ cmd: 'SetTaskExec', enabled }, 'SetTaskExecOK', 'set task exec');
  }

  async deregister(): Promise<JsonObject> {
    return this.json({ cmd: 'Deregister' }, 'DeregisterOK', 'deregister');
  }

  /** Closes any connection of the daemon by id (as `pilotctl disconnect`). */
  async disconnect(connId: number): Promise<void> {
    checkU32(connId, 'connection id');
    await this.closeConn(connId).catch((err: unknown) => {
      throw fromDaemonError(err, `disconnect ${connId}`, 'not_found');
    });
  }

  /** Closes the IPC connection; the daemon then closes this driver's connections and ports. */
  async close(): Promise<void> {
    await this.client?.close();
  }

  private ipc(): IpcClient {
    if (this.client === null) throw new PilotError('not_running', 'not connected to a daemon');
    return this.client;
  }

  private closeConn(connId: number): Promise<void> {
    return this.ipc().request(
      { cmd: 'Close', connId },
      'CloseOK',
      () => undefined,
      (msg) => msg.cmd === 'CloseOK' && msg.connId === connId,
    );
  }

  private async json(
    msg: IpcMessage,
    expect: IpcCmdName,
    context: string,
    fallback: 'connection_failed' | 'not_found' = 'connection_failed',
  ): Promise<JsonObject> {
    const reply = this.ipc().request(msg, expect, (m): JsonObject => {
      if ('json' in m) return m.json;
      throw new PilotError('protocol', `${context}: unexpected ${m.cmd} reply`);
    });
    return reply.catch((err: unknown) => {
      throw fromDaemonError(err, context, fallback);
    });
  }

  private adopt(ends: ConnEndpoints): Conn {
    const conn = this.newConn(ends);
    this.conns.set(conn.id, conn);
    return conn;
  }

  private newConn(ends: ConnEndpoints): Conn {
    return new Conn(this.link, ends, this.maxUnread === undefined ? {} : { maxUnread: this.maxUnread });
  }

  private openListener(port: number): Listener {
    const listener = new Listener(port, (l) => {
      if (this.portListeners.get(port) === l) this.portListeners.delete(port);
    });
    this.portListeners.set(port, listener);
    return listener;
  }

  private handlers(): IpcClientHandlers {
    return {
      onPush: (msg) => this.onPush(msg),
      onUnsolicitedError: (err) => {
        // Without a listener an 'error' event would throw; an asynchronous Send failure is not
        // worth crashing the process for.
        if (this.listenerCount('error') > 0)
          this.emit('error', new PilotError('connection_failed', `daemon: ${err.message}`, undefined, { cause: err }));
      },
      onClose: (err) => this.onClose(err),
    };
  }

  private onPush(msg: IpcPush): void {
    switch (msg.cmd) {
      case 'Accept': {
        const conn = this.adopt({
          id: msg.connId,
          localAddr: this.address,
          localPort: msg.localPort,
          remoteAddr: msg.remoteAddr,
          remotePort: msg.remotePort,
        });
        const listener = this.portListeners.get(msg.localPort);
        if (!listener?.deliver(conn)) conn.destroy();
        return;
      }
      case 'Recv':
        this.conns.get(msg.connId)?.receive(msg.data);
        return;
      case 'CloseOK':
        this.conns.get(msg.connId)?.remoteClosed();
        return;
      case 'RecvFrom': {
        const datagram: Datagram = {
          srcAddr: msg.srcAddr,
          srcPort: msg.srcPort,
          dstPort: msg.dstPort,
          data: Buffer.from(msg.data.buffer, msg.data.byteOffset, msg.data.byteLength),
        };
        this.emit('datagram', datagram);
        this.inbox.deliver(datagram);
        return;
      }
    }
  }

  private onClose(err: PilotError | null): void {
    this.ended = true;
    for (const conn of [...this.conns.values()]) conn.detach(err ?? undefined);
    this.conns.clear();
    for (const listener of [...this.portListeners.values()]) listener.shutdown(err);
    this.inbox.close(err);
    this.emit('close', err);
  }
}
