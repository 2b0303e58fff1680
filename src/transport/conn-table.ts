import type { Addr } from '../protocol/address.js';
import type { Connection } from './connection.js';
import { DeadlineHeap } from './deadline-heap.js';
import type { Millis } from './types.js';

/** A node and how many live connections it holds (of some port, or of the whole table). */
export interface Holder {
  readonly node: number;
  readonly count: number;
}

/**
 * The endpoint's connections, indexed by id and by 4-tuple. Connections lingering in TIME_WAIT
 * (10 s each: thousands on a node that opens many short streams) are kept apart in a FIFO, ordered
 * by their deadline since the linger time is the same for all, so that per-packet and per-timer
 * work only visits live connections. Live inbound connections are also indexed by the node that
 * opened them, per local port and in all, oldest first, so that the endpoint can share its slots
 * fairly between nodes.
 *
 * The next deadline of the live connections is kept in a heap: a connection's deadline is looked
 * at again only after a call that may have moved it (`settle`, or `add` for a new one), so finding
 * the next timer and the due connections does not walk every connection on every flush.
 */
export class ConnectionTable {
  private readonly byId = new Map<number, Connection>();
  /** By remote node (network and node), then by the two ports: numeric keys, no string per packet. */
  private readonly byTuple = new Map<number, Map<number, Connection>>();
  private readonly live = new Set<Connection>();
  /**
   * Connections per local port, TIME_WAIT included (a lingering connection keeps its port). An array
   * indexed by port: a dial at thousands a second looks up dozens of ports when the range is full.
   */
  private readonly portUse = new Uint32Array(0x10000);
  /** Live connections per local port. */
  private readonly liveOnPort = new Map<number, number>();
  /** Live inbound connections, oldest first: per local port, per node on each port, per node. */
  private readonly inboundOnPort = new Map<number, Set<Connection>>();
  private readonly inboundByPortNode = new Map<number, Map<number, Set<Connection>>>();
  private readonly inboundByNode = new Map<number, Set<Connection>>();
  private readonly inbound = new Set<Connection>();
  private timeWait: Connection[] = [];
  private timeWaitHead = 0;
  private readonly deadlines = new DeadlineHeap<Connection>();
  /** Live connections whose deadline may have changed since it was last filed. */
  private readonly dirty = new Set<Connection>();

  /** `inbound`: opened by the peer's SYN (those are the ones shared fairly between nodes). */
  add(conn: Connection, inbound = false): void {
    this.byId.set(conn.id, conn);
    const nodeKey = nodeKeyOf(conn.remote.addr);
    let byPorts = this.byTuple.get(nodeKey);
    if (!byPorts) this.byTuple.set(nodeKey, (byPorts = new Map()));
    byPorts.set(portsKey(conn.localPort, conn.remote.port), conn);
    this.live.add(conn);
    this.dirty.add(conn);
    this.portUse[conn.localPort] = (this.portUse[conn.localPort] ?? 0) + 1;
    this.liveOnPort.set(conn.localPort, (this.liveOnPort.get(conn.localPort) ?? 0) + 1);
    if (!inbound) return;
    const node = conn.remote.addr.node;
    this.inbound.add(conn);
    setIn(this.inboundOnPort, conn.localPort, conn);
    setIn(this.inboundByNode, node, conn);
    let byNode = this.inboundByPortNode.get(conn.localPort);
    if (!byNode) this.inboundByPortNode.set(conn.localPort, (byNode = new Map()));
    setIn(byNode, node, conn);
  }

  get(id: number): Connection | undefined {
    return this.byId.get(id);
  }

  lookup(localPort: number, addr: Addr, remotePort: number): Connection | undefined {
    return this.byTuple.get(nodeKeyOf(addr))?.get(portsKey(localPort, remotePort));
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
    if (conn.state === 'TIME_WAIT') {
      if (this.leaveLive(conn)) this.timeWait.push(conn);
      return;
    }
    if (this.live.has(conn)) this.dirty.add(conn);
  }

  /** Takes a connection out of the live set and its indices; false when it was not live. */
  private leaveLive(conn: Connection): boolean {
    if (!this.live.delete(conn)) return false;
    this.dirty.delete(conn);
    this.deadlines.delete(conn);
    const port = conn.localPort;
    const left = (this.liveOnPort.get(port) ?? 1) - 1;
    if (left > 0) this.liveOnPort.set(port, left);
    else this.liveOnPort.delete(port);
    if (!this.inbound.delete(conn)) return true;
    const node = conn.remote.addr.node;
    deleteIn(this.inboundOnPort, port, conn);
    deleteIn(this.inboundByNode, node, conn);
    const byNode = this.inboundByPortNode.get(port);
    if (byNode) {
      deleteIn(byNode, node, conn);
      if (byNode.size === 0) this.inboundByPortNode.delete(port);
    }
    return true;
  }

  nextTimeout(): Millis | undefined {
    this.fileDirty();
    let min = this.deadlines.peek();
    const lingering = this.firstLingering();
    const end = lingering?.nextTimeout();
    // The end of TIME_WAIT need not be exact: on the grid, one timer ends every lingering
    // connection whose time is up instead of one wake-up per connection.
    const t = end === undefined ? undefined : Math.ceil(end / TIME_WAIT_GRID_MS) * TIME_WAIT_GRID_MS;
    if (t !== undefined && (min === undefined || t < min)) min = t;
    return min;
  }

  /** Runs every timer that is due, then files the connections again. */
  expire(now: Millis): void {
    this.fileDirty();
    // Each due connection runs its timers once (taken out first: running them re-files it).
    for (const conn of this.deadlines.takeDue(now)) {
      conn.handleTimeout(now);
      this.settle(conn);
    }
    for (let conn = this.firstLingering(); conn; conn = this.firstLingering()) {
      const t = conn.nextTimeout();
      if (t !== undefined && t > now) break;
      conn.handleTimeout(now);
      this.remove(conn);
    }
  }

  /** Files the deadlines of the connections that may have moved them. */
  private fileDirty(): void {
    if (this.dirty.size === 0) return;
    for (const conn of this.dirty) this.deadlines.update(conn, conn.nextTimeout());
    this.dirty.clear();
  }

  /** Connections that are neither closed nor in TIME_WAIT. */
  get activeCount(): number {
    return this.live.size;
  }

  activeOnPort(port: number): number {
    return this.liveOnPort.get(port) ?? 0;
  }

  /** Live inbound connections `node` opened on `port` (or on any port), oldest first. */
  inboundFrom(node: number, port?: number): ReadonlySet<Connection> {
    const set = port === undefined ? this.inboundByNode.get(node) : this.inboundByPortNode.get(port)?.get(node);
    return set ?? EMPTY_SET;
  }

  /** The oldest live inbound connection on `port`. */
  oldestInbound(port: number): Connection | undefined {
    return first(this.inboundOnPort.get(port));
  }

  /** The node holding the most live inbound connections on `port` (or in all); the first such on a tie. */
  heaviest(port?: number): Holder | undefined {
    const sets = port === undefined ? this.inboundByNode : this.inboundByPortNode.get(port);
    let best: Holder | undefined;
    for (const [node, set] of sets ?? []) if (!best || set.size > best.count) best = { node, count: set.size };
    return best;
  }

  portInUse(port: number): boolean {
    return this.portUse[port] !== 0;
  }

  /**
   * Ends the lingering connection that has waited longest, once it has lingered
   * MIN_LINGER_BEFORE_REUSE_MS of its `timeWaitMs`, and returns its local port when that frees it
   * for `canUse` (as a kernel reuses a port in TIME_WAIT for a new outgoing connection once all
   * others are taken); undefined otherwise.
   */
  reclaimLingeringPort(now: Millis, timeWaitMs: Millis, canUse: (port: number) => boolean): number | undefined {
    const endsBy = now + timeWaitMs - MIN_LINGER_BEFORE_REUSE_MS;
    for (let conn = this.firstLingering(); conn; conn = this.firstLingering()) {
      const end = conn.nextTimeout();
      if (end !== undefined && end > endsBy) return undefined;
      this.remove(conn);
      if (this.portUse[conn.localPort] === 0 && canUse(conn.localPort)) return conn.localPort;
    }
    return undefined;
  }

  private remove(conn: Connection): void {
    this.leaveLive(conn);
    if (this.byId.get(conn.id) !== conn) return;
    this.byId.delete(conn.id);
    const used = this.portUse[conn.localPort] ?? 0;
    if (used > 0) this.portUse[conn.localPort] = used - 1;
    const nodeKey = nodeKeyOf(conn.remote.addr);
    const byPorts = this.byTuple.get(nodeKey);
    const key = portsKey(conn.localPort, conn.remote.port);
    if (byPorts?.get(key) !== conn) return;
    byPorts.delete(key);
    if (byPorts.size === 0) this.byTuple.delete(nodeKey);
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

/**
 * A lingering connection gives its port to a new dial (every other one being held) only after it
 * has lingered this long: old duplicates of a connection that closed a second ago are long gone on
 * any path a stream survives, and its random initial sequence number keeps a stray one out of the
 * new window.
 */
const MIN_LINGER_BEFORE_REUSE_MS = 1_000;
const EMPTY_SET: ReadonlySet<Connection> = new Set();
/** TIME_WAIT ends on the next multiple of this (so at most this much later than its time). */
const TIME_WAIT_GRID_MS = 1000;

function first(set: ReadonlySet<Connection> | undefined): Connection | undefined {
  if (!set) return undefined;
  for (const c of set) return c;
  return undefined;
}

function setIn<K>(map: Map<K, Set<Connection>>, key: K, conn: Connection): void {
  let set = map.get(key);
  if (!set) map.set(key, (set = new Set()));
  set.add(conn);
}

function deleteIn<K>(map: Map<K, Set<Connection>>, key: K, conn: Connection): void {
  const set = map.get(key);
  if (!set) return;
  set.delete(conn);
  if (set.size === 0) map.delete(key);
}

/** Network (u16) and node (u32) as one exact number (48 bits). */
function nodeKeyOf(addr: Addr): number {
  return addr.network * 0x1_0000_0000 + addr.node;
}

function portsKey(localPort: number, remotePort: number): number {
  return localPort * 0x1_0000 + remotePort;
}
