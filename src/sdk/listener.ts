import { EventEmitter } from 'node:events';
import { AsyncQueue } from './async-queue.js';
import type { Conn } from './conn.js';
import type { PilotConn, PilotListener } from '../pilot-net.js';

/** Accepted connections held for the async iterator when no 'connection' listener takes them. */
export const LISTENER_BACKLOG = 128;

export interface Listener<C extends PilotConn = Conn> {
  on(event: 'connection', listener: (conn: C) => void): this;
  on(event: 'close', listener: () => void): this;
  on(event: 'error', listener: (err: Error) => void): this;
  once(event: 'connection', listener: (conn: C) => void): this;
  once(event: 'close', listener: () => void): this;
  once(event: 'error', listener: (err: Error) => void): this;
  off(event: 'connection', listener: (conn: C) => void): this;
  off(event: 'close', listener: () => void): this;
  off(event: 'error', listener: (err: Error) => void): this;
}

/**
 * Connections accepted on one bound port. Each connection is emitted as 'connection'; when nobody
 * listens for that event it is queued for the async iterator instead (up to LISTENER_BACKLOG;
 * beyond that it is closed). One consumer per listener: iterate it, or listen for 'connection'.
 *
 * The IPC protocol has no Unbind: `close()` stops delivery here, while the daemon keeps the port
 * bound until the driver disconnects (connections it still accepts are closed by the driver).
 */
// biome-ignore lint/suspicious/noUnsafeDeclarationMerging: the interface above only types the events of EventEmitter's own methods.
export class Listener<C extends PilotConn = Conn> extends EventEmitter implements PilotListener {
  private readonly backlog = new AsyncQueue<C>(LISTENER_BACKLOG);
  private closed = false;

  constructor(
    readonly port: number,
    private readonly onClose: (listener: Listener<C>) => void,
  ) {
    super();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Hands over a connection accepted for this port; false if the listener cannot take it. */
  deliver(conn: C): boolean {
    if (this.closed) return false;
    if (this.listenerCount('connection') > 0) {
      this.emit('connection', conn);
      return true;
    }
    return this.backlog.push(conn);
  }

  /** Leaving the loop early (break, throw) closes the listener, as the iteration owned it. */
  [Symbol.asyncIterator](): AsyncIterator<C> {
    return {
      next: () => this.backlog.next(),
      return: async () => {
        await this.close();
        return { value: undefined, done: true };
      },
    };
  }

  close(): Promise<void> {
    this.shutdown(null);
    return Promise.resolve();
  }

  /** Closes the listener because the driver went away; `err` fails a waiting iterator. */
  shutdown(err: Error | null): void {
    if (this.closed) return;
    this.closed = true;
    // Connections accepted but never handed to the application would otherwise stay open.
    for (const conn of this.backlog.drain()) conn.destroy();
    if (err) this.backlog.fail(err);
    else this.backlog.end();
    this.onClose(this);
    this.emit('close');
  }
}
