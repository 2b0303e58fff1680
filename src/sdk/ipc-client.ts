import { createConnection, type Socket } from 'node:net';
import { PilotError } from '../errors.js';
import {
  decodeIpcMessage,
  encodeIpcFrame,
  IpcFrameSplitter,
  writeIpcFrame,
  type IpcCmdName,
  type IpcMessage,
} from '../protocol/ipc.js';
import { abortError } from './abort.js';

export const NOT_RUNNING_HINT = 'start it with: pilotctl daemon start';

/**
 * An Error message the daemon sent in reply to a request. `daemonCode` is the frame's code: the
 * kind of failure from a pilot-ts daemon (IPC_ERROR_CODES), always 1 from the reference.
 */
export class DaemonReplyError extends Error {
  override readonly name = 'DaemonReplyError';
  constructor(
    readonly daemonCode: number,
    message: string,
  ) {
    super(message);
  }
}

/** Messages the daemon sends on its own, not as a reply (CloseOK is both). */
export type IpcPush = Extract<IpcMessage, { cmd: 'Accept' | 'Recv' | 'CloseOK' | 'RecvFrom' }>;

export interface IpcClientHandlers {
  onPush(msg: IpcPush): void;
  /** An Error arrived while no request was waiting (typically a failed Send or SendTo). */
  onUnsolicitedError(err: DaemonReplyError): void;
  /** The IPC socket closed; `err` is set when it did not close on our request. */
  onClose(err: PilotError | null): void;
}

interface Pending {
  readonly expect: IpcCmdName;
  /**
   * False for a Close: it is answered by CloseOK alone, which a half-close may hold back until the
   * peer finishes (seconds), so an Error arriving meanwhile belongs to a later request.
   */
  readonly takesErrors: boolean;
  readonly match: ((msg: IpcMessage) => boolean) | undefined;
  readonly settle: (msg: IpcMessage | null, err: unknown) => void;
}

/**
 * One IPC connection to a daemon (PROTOCOL.md §8). Replies carry no request id: each goes to the
 * oldest request waiting for that reply command, and an Error goes to the oldest request of any
 * kind, which is also what the reference driver does.
 */
export class IpcClient {
  private readonly splitter = new IpcFrameSplitter();
  private readonly pending: Pending[] = [];
  private readonly drainWaiters: Array<(err: Error | null) => void> = [];
  private closeError: PilotError | null = null;
  private closing = false;
  private dials = 0;
  private readonly closed: Promise<void>;

  private constructor(
    private readonly socket: Socket,
    private readonly handlers: IpcClientHandlers,
  ) {
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.flushDrainWaiters(null));
    socket.on('error', (err) => {
      this.closeError ??= new PilotError('not_running', `daemon connection failed: ${err.message}`, undefined, {
        cause: err,
      });
    });
    socket.on('close', () => this.onSocketClose());
  }

  static connect(path: string, handlers: IpcClientHandlers, signal?: AbortSignal): Promise<IpcClient> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) {
        reject(abortError(signal));
        return;
      }
      const socket = createConnection({ path });
      const cleanup = (): void => {
        socket.off('connect', onConnect);
        socket.off('error', onError);
        signal?.removeEventListener('abort', onAbort);
      };
      const onConnect = (): void => {
        cleanup();
        resolve(new IpcClient(socket, handlers));
      };
      const onError = (err: NodeJS.ErrnoException): void => {
        cleanup();
        socket.destroy();
        reject(connectError(path, err));
      };
      const onAbort = (): void => {
        cleanup();
        socket.destroy();
        reject(abortError(signal as AbortSignal));
      };
      socket.once('connect', onConnect);
      socket.once('error', onError);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  get isClosed(): boolean {
    return this.closing || this.socket.destroyed;
  }

  /**
   * Dial and DialData requests written so far: the daemon numbers a client's dials in the same
   * order, from 1, and DialCancel names a dial by that number.
   */
  get dialsSent(): number {
    return this.dials;
  }

  /**
   * Sends `msg` and waits for a reply of type `expect` (optionally also satisfying `match`).
   * `onReply` runs synchronously when the reply is read, before any later message is dispatched,
   * so that state it creates (a connection, a bound port) is in place for the pushes that follow.
   */
  request<T>(
    msg: IpcMessage,
    expect: IpcCmdName,
    onReply: (reply: IpcMessage) => T,
    match?: (reply: IpcMessage) => boolean,
  ): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (this.isClosed) {
        reject(this.lostError());
        return;
      }
      let frame: Uint8Array;
      try {
        frame = encodeIpcFrame(msg);
      } catch (err) {
        reject(new PilotError('invalid_argument', err instanceof Error ? err.message : String(err)));
        return;
      }
      const settle = (reply: IpcMessage | null, err: unknown): void => {
        if (reply === null) {
          reject(err);
          return;
        }
        try {
          resolve(onReply(reply));
        } catch (e) {
          reject(e);
        }
      };
      this.pending.push({ expect, match, settle, takesErrors: msg.cmd !== 'Close' });
      this.socket.write(frame);
      if (msg.cmd === 'Dial' || msg.cmd === 'DialData') this.dials++;
    });
  }

  /** Writes a message that has no reply. False when the socket buffer is full: wait with `onDrain`. */
  send(msg: IpcMessage): boolean {
    if (this.isClosed) throw this.lostError();
    return writeIpcFrame(this.socket, msg);
  }

  /** Calls back once the socket can take more data (at once if it already can), or with the close error. */
  onDrain(callback: (err: Error | null) => void): void {
    if (this.isClosed) callback(this.lostError());
    else if (!this.socket.writableNeedDrain) callback(null);
    else this.drainWaiters.push(callback);
  }

  async close(): Promise<void> {
    if (!this.closing) {
      this.closing = true;
      this.socket.end();
      const force = setTimeout(() => this.socket.destroy(), 2000);
      force.unref();
      await this.closed;
      clearTimeout(force);
    }
    await this.closed;
  }

  private lostError(): PilotError {
    return this.closeError ?? new PilotError('not_running', 'the connection to the daemon is closed', NOT_RUNNING_HINT);
  }

  private onData(chunk: Buffer): void {
    for (const frame of this.splitter.push(chunk)) {
      if (!frame.ok) {
        this.closeError = new PilotError('protocol', `daemon sent a bad IPC frame: ${frame.error.message}`);
        this.socket.destroy();
        return;
      }
      const msg = decodeIpcMessage(frame.value);
      // A single undecodable message does not break the framing; skip it.
      if (msg.ok) this.dispatch(msg.value);
      if (this.socket.destroyed) return;
    }
  }

  private dispatch(msg: IpcMessage): void {
    switch (msg.cmd) {
      case 'Accept':
      case 'Recv':
      case 'RecvFrom':
        this.handlers.onPush(msg);
        return;
      case 'CloseOK':
        this.handlers.onPush(msg);
        this.deliver(msg);
        return;
      case 'Error': {
        const err = new DaemonReplyError(msg.code, msg.message);
        const index = this.pending.findIndex((p) => p.takesErrors);
        const [oldest] = index < 0 ? [] : this.pending.splice(index, 1);
        if (oldest) oldest.settle(null, err);
        else this.handlers.onUnsolicitedError(err);
        return;
      }
      default:
        this.deliver(msg);
    }
  }

  private deliver(msg: IpcMessage): void {
    const index = this.pending.findIndex((p) => p.expect === msg.cmd && (p.match === undefined || p.match(msg)));
    if (index < 0) return;
    const [entry] = this.pending.splice(index, 1);
    entry?.settle(msg, null);
  }

  private flushDrainWaiters(err: Error | null): void {
    for (const waiter of this.drainWaiters.splice(0, this.drainWaiters.length)) waiter(err);
  }

  private onSocketClose(): void {
    const unexpected = !this.closing;
    this.closing = true;
    const err = this.lostError();
    for (const entry of this.pending.splice(0, this.pending.length)) entry.settle(null, err);
    this.flushDrainWaiters(err);
    this.handlers.onClose(unexpected ? err : null);
  }
}

function connectError(path: string, err: NodeJS.ErrnoException): PilotError {
  if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED' || err.code === 'ENOTSOCK') {
    return new PilotError('not_running', `daemon is not running (no socket at ${path})`, NOT_RUNNING_HINT, {
      cause: err,
    });
  }
  return new PilotError('connection_failed', `cannot connect to the daemon at ${path}: ${err.message}`, undefined, {
    cause: err,
  });
}
