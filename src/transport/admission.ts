import { KeyedRateLimiter, TokenBucket } from '../rate-limit.js';
import type { ConnectionTable } from './conn-table.js';
import type { Connection } from './connection.js';
import type { Millis } from './types.js';

/** Source nodes tracked by each per-source limiter (SYNs, resets); beyond it new sources are refused. */
const MAX_TRACKED_SOURCES = 4096;

/** Rules for the connections of one local port, on top of the endpoint's own limits. */
export interface PortPolicy {
  /** Live connections one node may hold on the port; a SYN beyond it closes that node's oldest one there. */
  maxConnsPerSource?: number;
  /** New connections per second one node may open on the port (burst: twice that). */
  synRatePerSource?: number;
  /** Connections on the port are aborted (RST) this long after they were accepted, whatever their state. */
  maxLifetimeMs?: Millis;
  /**
   * When the port is full and no node holds more than its share, close the port's oldest
   * connection instead of refusing the SYN (for ports whose connections are all short-lived).
   */
  evictOldestWhenFull?: boolean;
}

/** The endpoint's limits on who gets a connection (see EndpointOptions for each). */
export interface AdmissionLimits {
  maxConnsPerPort: number;
  maxConnsTotal: number;
  synRatePerSecond: number;
  synRatePerSource: number;
  peerShare: number;
  resetRatePerSource: number;
  resetBurstPerSource: number;
}

/** Why an inbound SYN was refused: no connection was made. */
export type SynRefusal = 'rate_limited' | 'no_listener' | 'port_full' | 'total_full' | 'untrusted';

/**
 * The endpoint's refusal counters: SYNs refused by reason, connections closed to make room for
 * another node's (`evicted`), and RSTs not sent because the node they were for had used up its
 * reset budget (`rst_suppressed`).
 */
export type RefusalCounters = Record<SynRefusal | 'evicted' | 'rst_suppressed', number>;

/**
 * Who gets a connection slot: SYN rates per node, per port and in all, each node's fair share of a
 * port and of the whole table, and each node's budget of RSTs. Evictions are carried out through
 * `evict`, which aborts the connection and takes it out of the table.
 */
export class Admission {
  readonly refusals: RefusalCounters = {
    rate_limited: 0,
    no_listener: 0,
    port_full: 0,
    total_full: 0,
    untrusted: 0,
    evicted: 0,
    rst_suppressed: 0,
  };
  private readonly synGlobal: TokenBucket;
  /** SYNs of nodes that open connections rarely get in from here once the global bucket is empty. */
  private readonly synReserve: TokenBucket;
  private readonly synPerSource: KeyedRateLimiter<number>;
  private readonly resetBudget: KeyedRateLimiter<number>;
  private readonly policies = new Map<number, { policy: PortPolicy; syn: KeyedRateLimiter<number> | undefined }>();

  constructor(
    private readonly limits: AdmissionLimits,
    private readonly conns: ConnectionTable,
    private readonly evict: (conn: Connection, now: Millis) => void,
  ) {
    if (!(limits.peerShare > 0 && limits.peerShare <= 1))
      throw new RangeError(`peerShare out of range: ${limits.peerShare}`);
    const global = limits.synRatePerSecond;
    this.synGlobal = new TokenBucket(global, global);
    this.synReserve = new TokenBucket(Math.max(1, global / 2), Math.max(1, global / 2));
    this.synPerSource = new KeyedRateLimiter(limits.synRatePerSource, limits.synRatePerSource, MAX_TRACKED_SOURCES);
    this.resetBudget = new KeyedRateLimiter(limits.resetRatePerSource, limits.resetBurstPerSource, MAX_TRACKED_SOURCES);
  }

  /** Sets (or with undefined clears) the rules for connections to a local port. */
  setPortPolicy(port: number, policy: PortPolicy | undefined): void {
    if (!policy) {
      this.policies.delete(port);
      return;
    }
    const rate = policy.synRatePerSource;
    this.policies.set(port, {
      policy: { ...policy },
      syn: rate === undefined ? undefined : new KeyedRateLimiter(rate, 2 * rate, MAX_TRACKED_SOURCES),
    });
  }

  /** How long connections accepted on the port may live (undefined: no limit). */
  lifetime(port: number): Millis | undefined {
    return this.policies.get(port)?.policy.maxLifetimeMs;
  }

  /**
   * Makes room for a SYN from `node` to a bound `port`, evicting where the node's share allows;
   * undefined when it may have a connection, else why not ('rate_limited' is counted here).
   */
  admit(node: number, port: number, now: Millis): Exclude<SynRefusal, 'no_listener' | 'untrusted'> | undefined {
    const rules = this.policies.get(port);
    if (!this.admitRate(node, rules?.syn, now)) {
      this.refusals.rate_limited++;
      return 'rate_limited';
    }
    const cap = rules?.policy.maxConnsPerSource;
    if (cap !== undefined) {
      // A node at its cap on this port makes room with its own oldest connection there.
      for (let mine = this.conns.inboundFrom(node, port); mine.size >= Math.max(1, cap); )
        this.evict(firstOf(mine) as Connection, now);
    }
    if (this.conns.activeOnPort(port) >= this.limits.maxConnsPerPort) {
      const victim = this.victimOnPort(port, node, rules?.policy.evictOldestWhenFull === true);
      if (!victim) return 'port_full';
      this.evict(victim, now);
    }
    if (this.conns.activeCount >= this.limits.maxConnsTotal) {
      const victim = this.victimInTable(node);
      if (!victim) return 'total_full';
      this.evict(victim, now);
    }
    return undefined;
  }

  /** Makes room for a local dial in a full table (a node above its share gives a slot back); false if none. */
  admitDial(now: Millis): boolean {
    if (this.conns.activeCount < this.limits.maxConnsTotal) return true;
    const victim = this.victimInTable(undefined);
    if (!victim) return false;
    this.evict(victim, now);
    return true;
  }

  /** Whether a RST may go to `node` now (counted as `rst_suppressed` when not). */
  allowReset(node: number, now: Millis): boolean {
    if (this.resetBudget.take(node, now)) return true;
    this.refusals.rst_suppressed++;
    return false;
  }

  /** Forgets sources whose buckets are full again. */
  reap(now: Millis): void {
    this.synPerSource.reap(now);
    this.resetBudget.reap(now);
    for (const { syn } of this.policies.values()) syn?.reap(now);
  }

  /**
   * Per-node buckets first, so that SYNs a node is refused cost nobody else anything; then the
   * global bucket. Once that is empty, a node that has used less than half of its own burst still
   * gets in, from a reserve the heavy nodes cannot touch: one flooding node cannot lock others out.
   */
  private admitRate(node: number, portLimiter: KeyedRateLimiter<number> | undefined, now: Millis): boolean {
    const light = this.synPerSource.level(node, now) >= 0.5;
    if (!this.synPerSource.take(node, now)) return false;
    if (portLimiter && !portLimiter.take(node, now)) return false;
    return this.synGlobal.take(now) || (light && this.synReserve.take(now));
  }

  private share(slots: number): number {
    return Math.max(1, Math.floor(slots * this.limits.peerShare));
  }

  /** Which connection gives way on a full port to a SYN from `node`; undefined: the SYN is refused. */
  private victimOnPort(port: number, node: number, oldestWhenFull: boolean): Connection | undefined {
    const share = this.share(this.limits.maxConnsPerPort);
    const top = this.conns.heaviest(port);
    if (top && top.node !== node && top.count > share && this.conns.inboundFrom(node, port).size < share) {
      return firstOf(this.conns.inboundFrom(top.node, port));
    }
    return oldestWhenFull ? this.conns.oldestInbound(port) : undefined;
  }

  /** Which connection gives way in a full table to a SYN from `node` (undefined: a local dial). */
  private victimInTable(node: number | undefined): Connection | undefined {
    const share = this.share(this.limits.maxConnsTotal);
    const top = this.conns.heaviest();
    if (!top || top.node === node || top.count <= share) return undefined;
    if (node !== undefined && this.conns.inboundFrom(node).size >= share) return undefined;
    return firstOf(this.conns.inboundFrom(top.node));
  }
}

function firstOf(set: ReadonlySet<Connection>): Connection | undefined {
  for (const c of set) return c;
  return undefined;
}
