import type { Addr } from '../protocol/address.js';
import type { Connection } from './connection.js';
import type { Millis } from './types.js';

/**
 * The endpoint's connections, indexed by id and by 4-tuple. Connections lingering in TIME_WAIT
 * (10 s each: thousands on a node that opens many short streams) are kept apart in a FIFO, ordered
 * by their deadline since the linger time is the same for all, so that per-packet and per-timer
 * work only visits live connections.
 */
export class ConnectionTable {
  private readonly byId = new Map<number, Connection>();
  private readonly byTuple = new Map<string, Connection>();
  private readonly live = new Set<Connection>();
  /** Connections per local port, TIME_WAIT included (a lingering connection keeps its port). */
  private readonly portUse = new Map<number, number>();
  private timeWait: Connection[] = [];
  private timeWaitHead = 0;

  add(conn: Connection): void {
    this.byId.set(conn.id, conn);
    this.byTuple.set(tupleKey(conn.localPort, conn.remote.addr, conn.remote.port), conn);
    this.live.add(conn);
    this.portUse.set(conn.localPort, (this.portUse.get(conn.localPort) ?? 0) + 1);
  }

  get(id: number): Connection | undefined {
    return this.byId.get(id);
  }

  lookup(localPort: number, addr: Addr, remotePort: number): Connection | undefined {
    return this.byTuple.get(tupleKey(localPort, addr, remotePort));
  }

  /** Every connection, TIME_WAIT included (for listings). */
  all(): IterableIterator<Connection> {
    return this.byId.values();
  }

  /**
   * Files a connection after anything that may have changed its state: a gone connection is
   * dropped, one that entered TIME_WAIT moves to the FIFO.
   */
  settle(conn: Connection | undefined): void {
    if (!conn) return;
    if (conn.gone) {
      this.remove(conn);
      return;
    }
    if (conn.state === 'TIME_WAIT' && this.live.delete(conn)) this.timeWait.push(conn);
  }

  nextTimeout(): Millis | undefined {
    let min: Millis | undefined;
    for (const conn of this.live) {
      const t = conn.nextTimeout();
      if (t !== undefined && (min === undefined || t < min)) min = t;
    }
    const lingering = this.firstLingering();
    const t = lingering?.nextTimeout();
    if (t !== undefined && (min === undefined || t < min)) min = t;
    return min;
  }

  /** Runs every timer that is due, then files the connections again. */
  expire(now: Millis): void {
    for (const conn of this.live) {
      const t = conn.nextTimeout();
      if (t !== undefined && t <= now) conn.handleTimeout(now);
      this.settle(conn);
    }
    for (let conn = this.firstLingering(); conn; conn = this.firstLingering()) {
      const t = conn.nextTimeout();
      if (t !== undefined && t > now) break;
      conn.handleTimeout(now);
      this.remove(conn);
    }
  }

  /** Connections that are neither closed nor in TIME_WAIT. */
  get activeCount(): number {
    return this.live.size;
  }

  activeOnPort(port: number): number {
    let n = 0;
    for (const c of this.live) if (c.localPort === port) n++;
    return n;
  }

  portInUse(port: number): boolean {
    return this.portUse.has(port);
  }

  private remove(conn: Connection): void {
    this.live.delete(conn);
    if (this.byId.get(conn.id) !== conn) return;
    this.byId.delete(conn.id);
    const left = (this.portUse.get(conn.localPort) ?? 1) - 1;
    if (left > 0) this.portUse.set(conn.localPort, left);
    else this.portUse.delete(conn.localPort);
    const key = tupleKey(conn.localPort, conn.remote.addr, conn.remote.port);
    if (this.byTuple.get(key) === conn) this.byTuple.delete(key);
  }

  /** The oldest connection still lingering; entries closed meanwhile are skipped and dropped. */
  private firstLingering(): Connection | undefined {
    while (this.timeWaitHead < this.timeWait.length) {
      const conn = this.timeWait[this.timeWaitHead] as Connection;
      if (!conn.gone && this.byId.get(conn.id) === conn) return conn;
      this.timeWaitHead++;
      this.compact();
    }
    return undefined;
  }

  private compact(): void {
    if (this.timeWaitHead === this.timeWait.length) {
      this.timeWait = [];
      this.timeWaitHead = 0;
    } else if (this.timeWaitHead >= 1024 && this.timeWaitHead * 2 >= this.timeWait.length) {
      this.timeWait = this.timeWait.slice(this.timeWaitHead);
      this.timeWaitHead = 0;
    }
  }
}

function tupleKey(localPort: number, addr: Addr, remotePort: number): string {
  return `${localPort}|${addr.network}|${addr.node}|${remotePort}`;
}
