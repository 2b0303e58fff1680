import type { Socket } from 'node:net';
import { ipcErrorCode, PilotError, toPilotError } from '../errors.js';
import type { Logger } from '../log.js';
import { decodeIpcMessage, IpcFrameSplitter, writeIpcFrame, type IpcMessage } from '../protocol/ipc.js';
import type { JsonObject, JsonValue } from '../protocol/json.js';
import { MAX_DATAGRAM_PAYLOAD } from '../protocol/tunnel.js';
import type { Datagram, PilotListener, RawConn } from '../pilot-net.js';
import type { NodeOperations } from '../pilot-node.js';
import { IpcConn, type IpcConnHost } from './ipc-conn.js';

/** What the IPC commands of PROTOCOL.md §8 act on: a running node's operations. */
export type IpcBackend = NodeOperations;

/** How long a connection the client closed (a half-close) may wait for the peer to finish before it is reset. */
const CLOSE_LINGER_MS = 30_000;

/**
 * How long a connection whose client went away may take to close before it is reset: its FIN
 * must be acknowledged and the peer must finish within this time.
 */
export const RELEASE_LINGER_MS = 5_000;

/**
 * While reading the client is paused (a connection's send buffer is full), nothing would notice
 * the client going away: this often, an empty frame (which every client ignores, PROTOCOL.md
 * §8.1) is written, and writing to a gone client fails and ends the session.
 */
const PAUSED_PROBE_MS = 1_000;
const EMPTY_FRAME = Buffer.alloc(4);

/**
 * What this IPC server understands beyond the reference (listed in InfoOK as `ipc_features`):
 * DialData (0x40), DialCancel (0x41), and Error codes that name the kind of failure.
 */
export const IPC_FEATURES: readonly string[] = Object.freeze(['dial_data', 'dial_cancel', 'error_codes', 'handshakes']);

export interface IpcSessionOptions {
  /** See RELEASE_LINGER_MS. */
  releaseLingerMs?: number;
  /** Counters of the whole IPC server, added to InfoOK as `ipc`. */
  serverStats?: () => JsonObject;
}

/** What one session holds, for the daemon's resource counters. */
export interface IpcSessionCounts {
  conns: number;
  listeners: number;
  /** Dials waiting or under way. */
  dials: number;
  /** Connections closed by this session and waiting (with a timer) to finish or be reset. */
  lingering: number;
}

/** One Dial or DialData of this client, from its arrival until its connection closes. */
interface DialEntry {
  readonly seq: number;
  /** Its place among the replies (see IpcSession.enqueue). */
  turn: number;
  /** Why the client's dial was given up (DialCancel, or the client went away) before it connected. */
  cancelled?: Error;
  /** Its connection once the dial has started. */
  conn?: IpcConn;
  /** Set once answered with DialOK. */
  connId?: number;
}

/** Handshakes one IPC client may have under way at once; later dials start as earlier ones finish. */
const MAX_OPENING = 64;

const cancelled = (): PilotError => new PilotError('timeout', 'dial cancelled by the client');

/** Marks a dial not yet answered as given up, and fails it in the stack if its SYN is out. */
function giveUp(entry: DialEntry, why: Error): void {
  entry.cancelled = why;
  entry.conn?.giveUpDial(why);
}

/**
 * One IPC client. Replies go out in the order of the commands (the client matches them by order,
 * as the reference's driver does), and commands run one after another, except Send, SendTo and
 * DialCancel, which act at once so a slow dial never holds up data or its own cancellation, and
 * dials, whose handshakes run side by side: a client's eight dials take one round trip, not eight.
 * Backpressure: a full connection pauses reading from the client; a slow client pauses the
 * connections it reads.
 *
 * Everything the client owns is given back when it goes away: dials under way are abandoned,
 * ports are unbound, and every connection is closed (FIN) with what still arrives discarded, then
 * reset if it has not finished within `releaseLingerMs`.
 */
export class IpcSession {
  private readonly splitter = new IpcFrameSplitter();
  private chain: Promise<void> = Promise.resolve();
  /** Replies are numbered in the order of their commands: the last number issued, and the last written. */
  private issued = 0;
  private answered = 0;
  private readonly conns = new Map<number, IpcConn>();
  private readonly listeners = new Map<number, PilotListener>();
  /** Connections that stopped forwarding because the client's socket is full. */
  private readonly blockedConns = new Set<IpcConn>();
  /** Connections whose full send buffer keeps us from reading the client. */
  private readonly waitingDrain = new Set<IpcConn>();
  private readonly dials = new Map<number, DialEntry>();
  private dialSeq = 0;
  /** Dials of this client whose handshake is under way. */
  private opening = 0;
  private readonly releaseLingerMs: number;
  private readonly host: IpcConnHost;
  private closed = false;
  private idleCallback: (() => void) | undefined;
  private pausedProbe: NodeJS.Timeout | undefined;

  constructor(
    private readonly socket: Socket,
    private readonly backend: IpcBackend,
    private readonly log: Logger,
    private readonly options: IpcSessionOptions = {},
  ) {
    this.releaseLingerMs = options.releaseLingerMs ?? RELEASE_LINGER_MS;
    this.host = {
      write: (msg) => this.write(msg),
      blocked: (conn) => this.blockedConns.add(conn),
      dialOpened: (conn) => this.dialOpened(conn),
      gone: (conn, err) => this.gone(conn, err),
    };
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => {
      const blocked = [...this.blockedConns];
      this.blockedConns.clear();
      for (const c of blocked) c.unblock();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => this.teardown());
  }

  deliverDatagram(d: Datagram): void {
    this.write({ cmd: 'RecvFrom', srcAddr: d.srcAddr, srcPort: d.srcPort, dstPort: d.dstPort, data: d.data });
  }

  /**
   * Calls back once the client is gone and nothing it held is left (its dials ended, its
   * connections closed); at once if that is already so.
   */
  onIdle(callback: () => void): void {
    this.idleCallback = callback;
    this.checkIdle();
  }

  private checkIdle(): void {
    if (!this.closed || this.idleCallback === undefined || this.conns.size > 0) return;
    for (const d of this.dials.values()) if (d.connId === undefined) return;
    const callback = this.idleCallback;
    this.idleCallback = undefined;
    callback();
  }

  counts(): IpcSessionCounts {
    let dials = 0;
    for (const d of this.dials.values()) if (d.connId === undefined) dials++;
    let lingering = 0;
    for (const c of this.conns.values()) if (c.lingering) lingering++;
    return { conns: this.conns.size, listeners: this.listeners.size, dials, lingering };
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
        this.error(new PilotError('protocol', msg.error.message));
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
        this.error(
          new PilotError(
            'too_large',
            `datagram of ${msg.data.length} bytes exceeds the maximum of ${MAX_DATAGRAM_PAYLOAD} bytes`,
          ),
        );
        return;
      }
      this.backend.sendTo(msg.addr, msg.port, msg.data).catch((err: unknown) => this.error(err));
      return;
    }
    if (msg.cmd === 'DialCancel') {
      this.cancelDial(msg.dialSeq);
      return;
    }
    if (msg.cmd === 'Dial' || msg.cmd === 'DialData') {
      // Numbered on arrival, as the client numbers them when it sends them.
      const entry: DialEntry = { seq: ++this.dialSeq, turn: 0 };
      this.dials.set(entry.seq, entry);
      // The handshake starts at once (up to MAX_OPENING dials of this client at a time); only its
      // answer waits for its turn among the replies, which the client matches by order.
      const opening = this.opening < MAX_OPENING ? this.open(msg, entry) : undefined;
      // (A handshake never completes within this call: its answer comes in a later turn.)
      entry.turn = this.enqueue(() => this.answerDial(opening ?? this.open(msg, entry), entry));
      return;
    }
    this.enqueue(() => this.run(msg));
  }

  /** Runs `step` after the commands before it; its reply (or its Error) is the next one written. */
  private enqueue(step: () => Promise<void>): number {
    const turn = ++this.issued;
    this.chain = this.chain
      .then(step)
      .catch((err: unknown) => this.error(err))
      .then(() => {
        this.answered = Math.max(this.answered, turn);
      });
    return turn;
  }

  private send(connId: number, data: Uint8Array): void {
    const conn = this.conns.get(connId);
    if (!conn?.acceptsSends) {
      this.error(new PilotError('not_found', `connection ${connId} not found`));
      return;
    }
    if (!conn.write(data) && !this.waitingDrain.has(conn)) {
      this.waitingDrain.add(conn);
      this.pauseClient();
      // Also called when the connection closes while full: the client must not stay unread.
      conn.whenDrained(() => {
        this.waitingDrain.delete(conn);
        if (this.waitingDrain.size === 0) this.resumeClient();
      });
    }
  }

  /** Starts a dial, unless the client cancelled it meanwhile or went away. */
  private open(msg: IpcMessage & { cmd: 'Dial' | 'DialData' }, entry: DialEntry): Promise<RawConn> {
    if (this.closed || entry.cancelled) return Promise.reject(cancelled());
    this.opening++;
    entry.conn = new IpcConn(this.host, entry.seq);
    const opened = this.backend.dialRaw(
      msg.addr,
      msg.port,
      // Without Nagle from the first segment (see accepted), set by the dial rather than after it.
      msg.cmd === 'DialData' ? { data: msg.data, noDelay: true } : { noDelay: true },
      entry.conn,
    );
    opened.then(
      () => this.opening--,
      () => this.opening--,
    );
    return opened;
  }

  /**
   * Answers a dial in its turn. A connection that completes for a client that gave up on it is
   * reset: nobody would ever read or close it.
   */
  private async answerDial(opened: Promise<RawConn>, entry: DialEntry): Promise<void> {
    let raw: RawConn;
    try {
      raw = await opened;
    } catch (err) {
      this.dials.delete(entry.seq);
      this.checkIdle();
      throw err;
    }
    // Answered already, when it connected (see dialOpened).
    if (entry.connId !== undefined) return;
    const conn = entry.conn;
    if (this.closed || entry.cancelled || !conn) {
      this.dials.delete(entry.seq);
      raw.abort();
      this.checkIdle();
      throw cancelled();
    }
    this.answerOpened(entry, conn);
  }

  /**
   * A dial's handshake completed. When every reply before its own is written, the DialOK goes out
   * now, from inside the stack's handling of the answer, not after the promise chain.
   */
  private dialOpened(conn: IpcConn): void {
    const entry = conn.dialSeq === undefined ? undefined : this.dials.get(conn.dialSeq);
    if (!entry || entry.turn !== this.answered + 1 || this.closed || entry.cancelled) return;
    this.answerOpened(entry, conn);
  }

  private answerOpened(entry: DialEntry, conn: IpcConn): void {
    entry.connId = conn.id;
    this.answered = Math.max(this.answered, entry.turn);
    if (!conn.isClosed) this.conns.set(conn.id, conn);
    // What came with the handshake (data in the SYN-ACK) follows the DialOK in the same write.
    conn.announce({ cmd: 'DialOK', connId: conn.id });
  }

  /** DialCancel: abandons a dial still waiting or under way, or resets the connection it made. */
  private cancelDial(seq: number): void {
    const entry = this.dials.get(seq);
    if (!entry) return;
    if (entry.connId === undefined) return giveUp(entry, cancelled());
    this.dials.delete(seq);
    this.conns.get(entry.connId)?.abort();
  }

  private pauseClient(): void {
    this.socket.pause();
    if (this.pausedProbe !== undefined) return;
    this.pausedProbe = setInterval(() => {
      if (!this.closed && !this.socket.destroyed) this.socket.write(EMPTY_FRAME);
    }, PAUSED_PROBE_MS);
    this.pausedProbe.unref();
  }

  private resumeClient(): void {
    if (this.pausedProbe !== undefined) clearInterval(this.pausedProbe);
    this.pausedProbe = undefined;
    if (!this.closed) this.socket.resume();
  }

  private async run(msg: IpcMessage): Promise<void> {
    // Commands still queued when the client went away are dropped: what they would open or bind
    // would belong to nobody.
    if (this.closed) return;
    switch (msg.cmd) {
      case 'Bind': {
        const port = msg.port;
        const listener = await this.backend.serveRaw(port, (raw) => this.accepted(raw));
        if (this.closed) {
          await listener.close();
          return;
        }
        this.listeners.set(port, listener);
        this.write({ cmd: 'BindOK', port });
        return;
      }
      case 'Close': {
        const owned = this.conns.get(msg.connId);
        if (owned && !owned.finished) {
          // Our Close is a half-close: the peer's remaining data is still pushed, and the CloseOK
          // (reply and end of stream at once) follows when the peer finishes or the linger runs out.
          owned.finish();
          if (!owned.lingering) owned.linger(CLOSE_LINGER_MS);
          return;
        }
        // Another client's connection may be closed too (`pilotctl disconnect`, as the reference).
        // An unknown id gets a CloseOK as in the reference: clients match Errors to requests by
        // order, and a Close must never take the Error of another request.
        if (owned) owned.finish();
        else this.backend.disconnect(msg.connId);
        this.write({ cmd: 'CloseOK', connId: msg.connId });
        return;
      }
      case 'Info': {
        const extra: Record<string, JsonValue> = { ipc_features: [...IPC_FEATURES] };
        if (this.options.serverStats) extra.ipc = this.options.serverStats();
        this.write({ cmd: 'InfoOK', json: { ...this.backend.info(), ...extra } });
        return;
      }
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
        throw new PilotError('protocol', `unexpected command from client: ${msg.cmd}`);
    }
  }

  /**
   * A connection to a port this client bound: announced at once (Accept, then what came with the
   * SYN, in one write). No Nagle for an application's connections: the SDK already joins the
   * writes of one tick into one Send, so holding a partial segment for up to a round trip would
   * only add latency (dials ask for the same, see open).
   */
  private accepted(raw: RawConn): IpcConn {
    const conn = new IpcConn(this.host);
    conn.opened(raw);
    raw.setNoDelay(true);
    this.conns.set(raw.id, conn);
    conn.announce({
      cmd: 'Accept',
      localPort: raw.localPort,
      connId: raw.id,
      remoteAddr: raw.remoteAddr,
      remotePort: raw.remotePort,
    });
    return conn;
  }

  /** A connection closed: the session forgets it (CloseOK, where due, is the connection's). */
  private gone(conn: IpcConn, err: Error | undefined): void {
    if (err) this.log.debug({ conn: conn.id, err: err.message }, 'connection failed');
    this.conns.delete(conn.id);
    this.blockedConns.delete(conn);
    if (conn.dialSeq !== undefined) this.dials.delete(conn.dialSeq);
    this.checkIdle();
  }

  /** An Error frame carrying the failure's code (IPC_ERROR_CODES) and its message. */
  private error(err: unknown): void {
    const e = toPilotError(err);
    this.write({ cmd: 'Error', code: ipcErrorCode(e.code), message: e.message });
  }

  private write(msg: IpcMessage): boolean {
    if (this.closed || this.socket.destroyed) return true;
    return writeIpcFrame(this.socket, msg);
  }

  private teardown(): void {
    if (this.closed) return;
    this.closed = true;
    const gone = new PilotError('connection_failed', 'the IPC client went away');
    for (const d of this.dials.values()) if (d.connId === undefined) giveUp(d, gone);
    for (const l of this.listeners.values()) void l.close();
    this.listeners.clear();
    if (this.pausedProbe !== undefined) clearInterval(this.pausedProbe);
    this.pausedProbe = undefined;
    this.waitingDrain.clear();
    this.blockedConns.clear();
    // Each connection leaves `conns` when it closes (see gone), so the counters show what is left.
    for (const c of [...this.conns.values()]) c.release(this.releaseLingerMs);
  }
}
