/** A connection with requests waiting, as the scheduler sees it. */
export interface Schedulable {
  /** Requests are shared out per source address, not per connection. */
  readonly remoteIp: string;
  /** Handles this connection's next request; resolves with whether it has more waiting. */
  runNext(): Promise<boolean>;
}

/** Sources with a request in progress at once (a store may answer asynchronously). */
const MAX_RUNNING = 32;
/** Work done in one event-loop turn before other sockets are read again. */
const SLICE_MS = 1;

interface Source {
  /** Its connections with a request waiting, in the order they became ready. */
  readonly conns: Schedulable[];
  /** One of its requests is in progress. */
  busy: boolean;
}

/**
 * Shares request handling out fairly: round-robin over the source addresses that have requests
 * waiting, one request per turn and one in progress per source at a time, and within a source
 * round-robin over its connections (a connection's requests stay in order). A source that
 * pipelines thousands of requests over many connections waits for its turn like one that sends a
 * single request, so others queue behind at most one of its requests rather than its backlog.
 * Every SLICE_MS of work the scheduler yields so that sockets are read again and newly waiting
 * sources join the rotation. Nothing is delayed without contention: no source is throttled, only
 * ordered.
 */
export class RequestScheduler {
  readonly #sources = new Map<string, Source>();
  /** Sources whose turn may come: not busy, something waiting. The Set's order is the rotation. */
  readonly #turns = new Set<string>();
  #running = 0;
  #sliceStart: number | undefined;

  /** Called when a connection has a request waiting and none in progress or handed over. */
  ready(conn: Schedulable): void {
    this.#enlist(conn);
    this.#pump();
  }

  /** Sources with a request in progress (tests, metrics). */
  get running(): number {
    return this.#running;
  }

  #enlist(conn: Schedulable): void {
    let source = this.#sources.get(conn.remoteIp);
    if (source === undefined) {
      source = { conns: [], busy: false };
      this.#sources.set(conn.remoteIp, source);
    }
    source.conns.push(conn);
    if (!source.busy) this.#turns.add(conn.remoteIp);
  }

  #pump(): void {
    const now = performance.now();
    if (this.#sliceStart === undefined) {
      this.#sliceStart = now;
      setImmediate(() => {
        this.#sliceStart = undefined;
        if (this.#turns.size > 0) this.#pump();
      });
    } else if (now - this.#sliceStart > SLICE_MS) return;
    while (this.#running < MAX_RUNNING) {
      const ip = this.#turns.values().next().value;
      if (ip === undefined) return;
      this.#turns.delete(ip);
      const source = this.#sources.get(ip) as Source;
      const conn = source.conns.shift() as Schedulable;
      source.busy = true;
      this.#running++;
      conn.runNext().then(
        (more) => this.#done(source, conn, more),
        () => this.#done(source, conn, false),
      );
    }
  }

  #done(source: Source, conn: Schedulable, more: boolean): void {
    this.#running--;
    source.busy = false;
    if (more) source.conns.push(conn);
    // Back of the rotation: every other waiting source goes first.
    if (source.conns.length > 0) this.#turns.add(conn.remoteIp);
    else this.#sources.delete(conn.remoteIp);
    this.#pump();
  }
}
