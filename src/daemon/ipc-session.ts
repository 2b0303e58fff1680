import type { Socket } from 'node:net';
import { PilotError, toPilotError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Addr } from '../protocol/address.js';
import { decodeIpcMessage, IpcFrameSplitter, writeIpcFrame, type IpcHandshakeOp, type IpcMessage } from '../protocol/ipc.js';
import type { JsonObject } from '../protocol/json.js';
import { MAX_DATAGRAM_PAYLOAD } from '../protocol/tunnel.js';
import type { Datagram, DialOptions, PilotConn, PilotListener } from '../sdk/types.js';

/** What the IPC commands of PROTOCOL.md §8 act on. */
export interface IpcBackend {
  listen(port: number): Promise<PilotListener>;
  dial(addr: Addr, port: number, options?: DialOptions): Promise<PilotConn>;
  sendTo(addr: Addr, port: number, data: Uint8Array): Promise<void>;
  /** Any live connection of the daemon by id (for Close of a connection this client does not own). */
  connection(connId: number): PilotConn | undefined;
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

/** How long a half-closed connection may wait for the peer to finish before it is reset. */
const CLOSE_LINGER_MS = 30_000;

/** Largest Recv push: data is forwarded as it is read, not one 4 KiB segment per message. */
const RECV_CHUNK = 60 * 1024;

/**
 * One IPC client. Commands run one after another (as the reference does), except Send and SendTo,
 * which go straight to their connection so a slow dial never holds up data. Backpressure: a full
 * connection pauses reading from the client; a slow client pauses the connections it reads.
 */
export class IpcSession {
  private readonly splitter = new IpcFrameSplitter();
  private chain: Promise<void> = Promise.resolve();
  private readonly conns = new Map<number, PilotConn>();
  private readonly listeners = new Map<number, PilotListener>();
  private readonly blockedConns = new Set<PilotConn>();
  /** Connections whose full send buffer keeps us from reading the client. */
  private readonly waitingDrain = new Set<PilotConn>();
  private closed = false;

  constructor(
    private readonly socket: Socket,
    private readonly backend: IpcBackend,
    private readonly log: Logger,
  ) {
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => {
      for (const c of this.blockedConns) c.resume();
      this.blockedConns.clear();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => this.teardown());
  }

  deliverDatagram(d: Datagram): void {
    this.write({ cmd: 'RecvFrom', srcAddr: d.srcAddr, srcPort: d.srcPort, dstPort: d.dstPort, data: d.data });
  }

  private onData(chunk: Buffer): void {
    for (const frame of this.splitter.push(chunk)) {
      if (!frame.ok) {
        this.log.info({ err: frame.error.message }, 'IPC client sent a bad frame; dropping it');
        this.socket.destroy();
        return;
      }
      if (frame.value.length === 0) continue;
      const msg = decodeIpcMessage(frame.value);
      if (!msg.ok) {
        this.error(msg.error.message);
        continue;
      }
      this.accept(msg.value);
    }
  }

  private accept(msg: IpcMessage): void {
    if (msg.cmd === 'Send') {
      this.send(msg.connId, msg.data);
      return;
    }
    if (msg.cmd === 'SendTo') {
      // Larger datagrams cannot cross every path (see MAX_DATAGRAM_PAYLOAD): refused here, with the limit.
      if (msg.data.length > MAX_DATAGRAM_PAYLOAD) {
        this.error(`datagram of ${msg.data.length} bytes exceeds the maximum of ${MAX_DATAGRAM_PAYLOAD} bytes`);
        return;
      }
      this.backend.sendTo(msg.addr, msg.port, msg.data).catch((err: unknown) => this.error(toPilotError(err).message));
      return;
    }
    this.chain = this.chain.then(() => this.run(msg)).catch((err: unknown) => this.error(toPilotError(err).message));
  }

  private send(connId: number, data: Uint8Array): void {
    const conn = this.conns.get(connId) ?? this.backend.connection(connId);
    if (!conn || conn.destroyed || conn.writableEnded) {
      this.error(`connection ${connId} not found`);
      return;
    }
    if (!conn.write(data) && !this.waitingDrain.has(conn)) {
      this.waitingDrain.add(conn);
      this.socket.pause();
      const resume = (): void => {
        this.waitingDrain.delete(conn);
        conn.off('drain', resume).off('close', resume);
        if (this.waitingDrain.size === 0) this.socket.resume();
      };
      // A connection that closes while full must not leave the client unread forever.
      conn.on('drain', resume).on('close', resume);
    }
  }

  private async run(msg: IpcMessage): Promise<void> {
    switch (msg.cmd) {
      case 'Bind': {
        const listener = await this.backend.listen(msg.port);
        this.listeners.set(msg.port, listener);
        listener.on('connection', (conn) => {
          this.adopt(conn);
          this.write({ cmd: 'Accept', localPort: conn.localPort, connId: conn.id, remoteAddr: conn.remoteAddr, remotePort: conn.remotePort });
          this.pipeToClient(conn);
        });
        this.write({ cmd: 'BindOK', port: msg.port });
        return;
      }
      case 'Dial':
      case 'DialData': {
        const conn = await this.backend.dial(msg.addr, msg.port, msg.cmd === 'DialData' ? { data: msg.data } : {});
        this.adopt(conn);
        this.write({ cmd: 'DialOK', connId: conn.id });
        this.pipeToClient(conn);
        return;
      }
      case 'Close': {
        const owned = this.conns.get(msg.connId);
        if (owned && !owned.readableEnded && !owned.destroyed) {
          // Our Close is a half-close: the peer's remaining data is still pushed, and the CloseOK
          // (reply and end of stream at once) follows when the peer finishes or the linger runs out.
          owned.end();
          setTimeout(() => owned.destroy(), CLOSE_LINGER_MS).unref();
          return;
        }
        if (owned) owned.end();
        else this.backend.connection(msg.connId)?.destroy();
        this.write({ cmd: 'CloseOK', connId: msg.connId });
        return;
      }
      case 'Info':
        this.write({ cmd: 'InfoOK', json: this.backend.info() });
        return;
      case 'Handshake':
        this.write({ cmd: 'HandshakeOK', json: await this.backend.handshake(msg.op) });
        return;
      case 'ResolveHostname':
        if (!msg.hostname) throw new PilotError('invalid_argument', 'hostname is empty');
        this.write({ cmd: 'ResolveHostnameOK', json: await this.backend.resolveHostname(msg.hostname) });
        return;
      case 'SetHostname':
        this.write({ cmd: 'SetHostnameOK', json: await this.backend.setHostname(msg.hostname) });
        return;
      case 'SetVisibility':
        this.write({ cmd: 'SetVisibilityOK', json: await this.backend.setVisibility(msg.public) });
        return;
      case 'Deregister':
        this.write({ cmd: 'DeregisterOK', json: await this.backend.deregister() });
        return;
      case 'SetTags':
        this.write({ cmd: 'SetTagsOK', json: await this.backend.setTags(msg.tags) });
        return;
      case 'SetWebhook':
        this.write({ cmd: 'SetWebhookOK', json: await this.backend.setWebhook(msg.url) });
        return;
      case 'SetTaskExec':
        this.write({ cmd: 'SetTaskExecOK', json: await this.backend.setTaskExec(msg.enabled) });
        return;
      default:
        throw new PilotError('invalid_argument', `unexpected command from client: ${msg.cmd}`);
    }
  }

  private adopt(conn: PilotConn): void {
    // No Nagle for an application's connections: the SDK already joins the writes of one tick into
    // one Send, so holding a partial segment for up to a round trip would only add latency.
    conn.setNoDelay?.(true);
    this.conns.set(conn.id, conn);
    conn.on('error', (err) => this.log.debug({ conn: conn.id, err: err.message }, 'connection failed'));
    conn.on('close', () => {
      this.conns.delete(conn.id);
      this.blockedConns.delete(conn);
      if (!conn.readableEnded) this.write({ cmd: 'CloseOK', connId: conn.id });
    });
  }

  private pipeToClient(conn: PilotConn): void {
    conn.on('data', (chunk: Buffer) => {
      for (let off = 0; off < chunk.length; off += RECV_CHUNK) {
        if (!this.write({ cmd: 'Recv', connId: conn.id, data: chunk.subarray(off, off + RECV_CHUNK) })) {
          conn.pause();
          this.blockedConns.add(conn);
        }
      }
    });
    conn.on('end', () => {
      this.write({ cmd: 'CloseOK', connId: conn.id });
    });
  }

  private error(message: string): void {
    this.write({ cmd: 'Error', code: 1, message });
  }

  private write(msg: IpcMessage): boolean {
    if (this.closed || this.socket.destroyed) return true;
    return writeIpcFrame(this.socket, msg);
  }

  private teardown(): void {
    if (this.closed) return;
    this.closed = true;
    for (const l of this.listeners.values()) void l.close();
    for (const c of this.conns.values()) c.end();
    this.conns.clear();
    this.listeners.clear();
  }
}
