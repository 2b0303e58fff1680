import { PORT_EPHEMERAL_MAX, PORT_EPHEMERAL_MIN } from '../protocol/ports.js';

/** Which local ports are bound by listeners and which ephemeral port to hand out next. */
export class PortTable {
  private readonly listeners = new Set<number>();
  private nextEphemeral: number;

  /** Dials take their local ports from `first`…`last` (PROTOCOL.md's ephemeral range by default). */
  constructor(
    private readonly first = PORT_EPHEMERAL_MIN,
    private readonly last = PORT_EPHEMERAL_MAX,
  ) {
    if (!Number.isInteger(first) || !Number.isInteger(last) || first < 1 || last > 0xffff || first > last)
      throw new RangeError(`invalid ephemeral port range ${first}-${last}`);
    this.nextEphemeral = first;
  }

  bind(port: number): void {
    if (!Number.isInteger(port) || port < 0 || port > 0xffff) throw new RangeError(`invalid port ${port}`);
    if (this.listeners.has(port)) throw new PortInUseError(port);
    this.listeners.add(port);
  }

  unbind(port: number): boolean {
    return this.listeners.delete(port);
  }

  isBound(port: number): boolean {
    return this.listeners.has(port);
  }

  get boundPorts(): number[] {
    return [...this.listeners].sort((a, b) => a - b);
  }

  /** Whether a dial may take `port` once no connection uses it: an ephemeral port no listener holds. */
  isEphemeral(port: number): boolean {
    return port >= this.first && port <= this.last && !this.listeners.has(port);
  }

  /**
   * The next ephemeral port for which inUse() is false, in sequence, looking at no more than
   * `maxTries` ports (all by default); undefined when none of them is free.
   */
  allocate(inUse: (port: number) => boolean, maxTries = Infinity): number | undefined {
    const tries = Math.min(this.last - this.first + 1, maxTries);
    for (let i = 0; i < tries; i++) {
      const port = this.nextEphemeral;
      this.nextEphemeral = port === this.last ? this.first : port + 1;
      if (!this.listeners.has(port) && !inUse(port)) return port;
    }
    return undefined;
  }
}

export class PortInUseError extends Error {
  override readonly name = 'PortInUseError';
  constructor(readonly port: number) {
    super(`port ${port} already bound`);
  }
}
