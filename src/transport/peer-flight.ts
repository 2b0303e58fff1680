/** Called when a connection held back by its peer's flight limit may send again. */
export type FlightResume = (now: number) => void;

/**
 * Bytes sent and not yet acknowledged on all connections to one peer node, against one limit.
 *
 * Every connection's window is sized for itself, but all of a peer's connections arrive through
 * one UDP socket whose receive buffer (a few MiB) holds the datagrams until the peer's process
 * reads them. A receiver slower than its senders (a loopback peer, a busy process) lets that
 * buffer fill and the kernel drops what does not fit; with many connections, the sum of their
 * windows is far beyond the buffer, and each burst of drops ends in retransmission timeouts
 * (a stall of 200 ms or more). Keeping the sum below the buffer avoids the drops.
 *
 * Connections that find no room wait in arrival order and are resumed once enough has been
 * acknowledged for a segment to fit.
 */
export class PeerFlight {
  bytes = 0;
  /** Connections using this budget (it can be forgotten once there are none). */
  users = 0;
  private waiting: FlightResume[] = [];
  private readonly queued = new Set<FlightResume>();

  constructor(
    readonly limit: number,
    /** Room worth waking a waiting connection for. */
    private readonly wakeRoom: number,
    private readonly onWait: (flight: PeerFlight) => void,
  ) {}

  get room(): number {
    return this.limit - this.bytes;
  }

  get hasWaiting(): boolean {
    return this.waiting.length > 0;
  }

  /** `resume` is called (once) when room opens up. */
  wait(resume: FlightResume): void {
    if (this.queued.has(resume)) return;
    this.queued.add(resume);
    this.waiting.push(resume);
    this.onWait(this);
  }

  /** Resumes waiting connections, first come first served, while there is room. */
  wake(now: number): void {
    if (this.room < this.wakeRoom || this.waiting.length === 0) return;
    const list = this.waiting;
    this.waiting = [];
    this.queued.clear();
    let i = 0;
    for (; i < list.length && this.room >= this.wakeRoom; i++) (list[i] as FlightResume)(now);
    // Those not reached keep their turn ahead of any that waited again meanwhile.
    const rest = list.slice(i).filter((r) => !this.queued.has(r));
    if (rest.length === 0) return;
    for (const r of rest) this.queued.add(r);
    this.waiting = [...rest, ...this.waiting];
    this.onWait(this);
  }
}

/** The flight budgets of every peer node, and those with connections waiting for room. */
export class PeerFlights {
  private readonly byNode = new Map<number, PeerFlight>();
  private readonly waiting = new Set<PeerFlight>();

  /** `limit` 0: no limit. `wakeRoom`: room worth waking a waiting connection for. */
  constructor(
    private readonly limit: number,
    private readonly wakeRoom: number,
  ) {}

  /** The budget of a node's connections (undefined without a limit). */
  of(node: number): PeerFlight | undefined {
    if (this.limit <= 0) return undefined;
    let flight = this.byNode.get(node);
    if (!flight) {
      flight = new PeerFlight(this.limit, this.wakeRoom, (f) => this.waiting.add(f));
      this.byNode.set(node, flight);
    }
    return flight;
  }

  /** Lets connections held back by their peer's flight limit send what now fits. */
  wake(now: number): void {
    if (this.waiting.size === 0) return;
    for (const flight of [...this.waiting]) {
      flight.wake(now);
      if (!flight.hasWaiting) this.waiting.delete(flight);
    }
  }

  /** Forgets the budgets no connection uses. */
  reap(): void {
    for (const [node, flight] of this.byNode) if (flight.users === 0) this.byNode.delete(node);
  }
}
