import type { NodeRecord } from './store.js';

/** Records kept at most (the oldest read goes first beyond it). */
const MAX_ENTRIES = 200_000;
/** An announcement counts against reads that were in flight for this long at most. */
const RECENT_MS = 2000;
/**
 * A record whose liveness times are older than this is read again (at most once a second): other
 * processes write the times of the nodes that heartbeat to them without announcing each one.
 */
const TIMES_FRESH_MS = 60_000;
const REREAD_MS = 1000;

export interface ReadTicket {
  readonly epoch: number;
  readonly at: number;
}

interface Announced {
  /** The newest version announced (-1: none). */
  version: number;
  /** When its liveness times were last announced (-Infinity: never). */
  seenAt: number;
}

export interface CachedNode {
  readonly node: NodeRecord;
  readonly version: number;
}

interface Entry {
  node: NodeRecord;
  readonly version: number;
  readAt: number;
}

/**
 * The node records this process read from a shared PostgreSQL store, kept current by the
 * database: every change of a record is announced at commit with its new version (migration 2),
 * and the announcement removes an older copy here. Copies are served only under a lease
 * (postgres-lease.ts): renewed on the listening connection, it vouches that every change committed
 * before the renewal was sent has been applied here, and a process that changes a record waits
 * until every process holding a lease has applied the change. While the listening connection is
 * down nothing is served from here, and everything read before is forgotten.
 */
export class PostgresNodeView {
  readonly #byId = new Map<number, Entry>();
  readonly #byKey = new Map<string, number>();
  readonly #byHostname = new Map<string, number>();
  /** Versions announced lately, in two generations: a read that started before may not store an older copy. */
  #recent = new Map<number, Announced>();
  #older = new Map<number, Announced>();
  #recentSince = 0;
  #live = false;
  /** Bumped whenever everything is forgotten: reads started before must not store their answer. */
  #epoch = 0;
  /** Copies are served until then (`clock`), while the lease holds. */
  #leaseUntil = 0;

  /** `now`: wall time, as liveness times are; `clock`: monotonic, for the lease. */
  constructor(
    private readonly now: () => number = Date.now,
    private readonly clock: () => number = () => performance.now(),
  ) {}

  /** Taken before a read: its answer may be stored only if nothing was forgotten meanwhile and it came in time. */
  ticket(): ReadTicket {
    return { epoch: this.#epoch, at: this.now() };
  }

  /** The listening connection is up (and announcements from now on arrive) or went down: no lease either way. */
  setLive(live: boolean): void {
    this.reset();
    this.#live = live;
    this.#leaseUntil = 0;
  }

  /** Every change committed before the lease was renewed has been applied: copies may be served until `until`. */
  lease(until: number): void {
    if (this.#live) this.#leaseUntil = until;
  }

  reset(): void {
    this.#epoch++;
    this.#byId.clear();
    this.#byKey.clear();
    this.#byHostname.clear();
  }

  /** The copy of a record and its version while the lease holds, unless its liveness times may be out of date. */
  get(id: number): CachedNode | undefined {
    const entry = this.#live && this.clock() < this.#leaseUntil ? this.#byId.get(id) : undefined;
    if (entry === undefined) return undefined;
    const now = this.now();
    const seen = entry.node.lastSeen;
    if ((seen === undefined || now - seen > TIMES_FRESH_MS) && now - entry.readAt > REREAD_MS) return undefined;
    return entry;
  }

  byKey(publicKey: string): CachedNode | undefined {
    const hit = this.#indexed(this.#byKey.get(publicKey));
    return hit?.node.publicKey === publicKey ? hit : undefined;
  }

  byHostname(hostname: string): CachedNode | undefined {
    const hit = this.#indexed(this.#byHostname.get(hostname));
    return hit?.node.hostname === hostname ? hit : undefined;
  }

  #indexed(id: number | undefined): CachedNode | undefined {
    return id === undefined ? undefined : this.get(id);
  }

  /** Stores what a read or write returned, unless something newer was announced meanwhile. */
  put(node: NodeRecord, version: number, ticket: ReadTicket): void {
    if (!this.#live || ticket.epoch !== this.#epoch || this.now() - ticket.at > RECENT_MS) return;
    const entry = this.#byId.get(node.id);
    if (this.#outdated(node.id, version, ticket) || (entry !== undefined && entry.version > version)) return;
    if (entry === undefined && this.#byId.size >= MAX_ENTRIES) {
      const oldest = this.#byId.keys().next();
      if (oldest.done !== true) this.#drop(oldest.value);
    }
    this.#byId.set(node.id, { node, version, readAt: this.now() });
    this.#byKey.set(node.publicKey, node.id);
    if (node.hostname !== '') this.#byHostname.set(node.hostname, node.id);
  }

  /** Whether a change announced after the read began makes its answer (of `version`) old. */
  #outdated(id: number, version: number, ticket: ReadTicket): boolean {
    for (const a of [this.#recent.get(id), this.#older.get(id)])
      if (a !== undefined && (a.version > version || a.seenAt >= ticket.at)) return true;
    return false;
  }

  #announce(id: number, version: number, seen: boolean): void {
    const now = this.now();
    if (now - this.#recentSince > RECENT_MS) {
      this.#older = this.#recent;
      this.#recent = new Map();
      this.#recentSince = now;
    }
    let a = this.#recent.get(id);
    if (a === undefined) {
      a = { version: -1, seenAt: -Infinity };
      this.#recent.set(id, a);
    }
    a.version = Math.max(a.version, version);
    if (seen) a.seenAt = now;
  }

  /** A change committed by any process (this one included). */
  announced(id: number, version: number): void {
    this.#announce(id, version, false);
    const entry = this.#byId.get(id);
    if (entry !== undefined && entry.version < version) this.#drop(id);
  }

  /** Drops the copy of one record: its liveness times changed in a way that matters (a node came back). */
  forget(id: number): void {
    if (!Number.isSafeInteger(id)) return;
    this.#announce(id, -1, true);
    this.#drop(id);
  }

  /**
   * Whether the copy of a record carries liveness times at least as late as these: they are stored
   * then (a copy's times come from the database or from writes that committed, and stored times
   * never move backwards).
   */
  covers(id: number, seen: number | undefined, proven: number | undefined): boolean {
    const node = this.#byId.get(id)?.node;
    if (node === undefined) return false;
    return (
      (seen === undefined || (node.lastSeen ?? -1) >= seen) &&
      (proven === undefined || (node.lastProven ?? -1) >= proven)
    );
  }

  /** Liveness times this process wrote: copies here carry them without a read. */
  times(id: number, seen: number | undefined, proven: number | undefined): void {
    const entry = this.#byId.get(id);
    if (entry === undefined) return;
    const node = entry.node;
    const lastSeen = Math.max(seen ?? -1, node.lastSeen ?? -1);
    const lastProven = Math.max(proven ?? -1, node.lastProven ?? -1);
    entry.node = {
      ...node,
      ...(lastSeen >= 0 ? { lastSeen } : {}),
      ...(lastProven >= 0 ? { lastProven } : {}),
    };
  }

  #drop(id: number): void {
    const entry = this.#byId.get(id);
    if (entry === undefined) return;
    this.#byId.delete(id);
    if (this.#byKey.get(entry.node.publicKey) === id) this.#byKey.delete(entry.node.publicKey);
    if (this.#byHostname.get(entry.node.hostname) === id) this.#byHostname.delete(entry.node.hostname);
  }
}
