import { EventEmitter } from 'node:events';
import type { PilotConn, PilotListener } from '../pilot-net.js';

/** Connections accepted while nobody is taking them are refused beyond this. */
const MAX_BACKLOG = 128;

/** Accepted connections on one port of the in-process stack; `net.Server`-like and async-iterable. */
export class LocalListener extends EventEmitter implements PilotListener {
  private closed = false;
  private readonly backlog: PilotConn[] = [];
  private readonly waiters: ((r: IteratorResult<PilotConn>) => void)[] = [];

  constructor(
    readonly port: number,
    private readonly onClose: (port: number) => void,
  ) {
    super();
  }

  /** Called by the stack for every connection accepted on this port. */
  deliver(conn: PilotConn): void {
    const waiter = this.waiters.shift();
    if (waiter) waiter({ value: conn, done: false });
    else if (this.listenerCount('connection') === 0) {
      if (this.backlog.length >= MAX_BACKLOG) {
        conn.destroy();
        return;
      }
      this.backlog.push(conn);
    }
    this.emit('connection', conn);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.onClose(this.port);
    // Accepted but never taken: nobody else will ever close them.
    for (const conn of this.backlog.splice(0)) conn.destroy();
    for (const w of this.waiters.splice(0)) w({ value: undefined, done: true });
    this.emit('close');
  }

  get isClosed(): boolean {
    return this.closed;
  }

  [Symbol.asyncIterator](): AsyncIterator<PilotConn> {
    return {
      next: () => {
        const conn = this.backlog.shift();
        if (conn) return Promise.resolve({ value: conn, done: false });
        if (this.closed) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => this.waiters.push(resolve));
      },
      return: async () => {
        await this.close();
        return { value: undefined, done: true };
      },
    };
  }
}
