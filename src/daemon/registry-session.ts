import { PilotError } from '../errors.js';
import type { Logger } from '../log.js';
import { formatAddr, parseAddr, type Addr } from '../protocol/address.js';
import type { JsonObject } from '../protocol/json.js';
import type { WebhookSink } from '../webhook-sink.js';

/** The registry calls the session makes (RegistryClient has them all). */
export interface SessionRegistry {
  register(p: { listenAddr: string; owner?: string; hostname?: string }): Promise<JsonObject>;
  heartbeat(): Promise<JsonObject>;
  setVisibility(isPublic: boolean): Promise<JsonObject>;
  setHostname(name: string): Promise<JsonObject>;
  lookup(nodeId: number): Promise<JsonObject>;
  watchHandshakes(onNotify: () => void): { stop(): void };
  /** Known after `register`: whether the registry pushes handshake notices (a Go registry does not). */
  readonly canWatchHandshakes: boolean;
}

export interface RegistrySessionOptions {
  registry: SessionRegistry;
  listenAddr: string;
  owner?: string;
  hostname?: string;
  public: boolean;
  heartbeatMs: number;
  log: Logger;
  webhooks: WebhookSink;
  /** Runs after every successful heartbeat and push notice (poll handshakes, beacon refresh). */
  onHeartbeat: () => void;
  onNotify: () => void;
  /** Runs after a re-registration (report trust again). */
  onReregistered: () => void;
}

const FAILURES_BEFORE_REREGISTER = 3;

/**
 * This node's presence in the registry: registration, heartbeats, re-registration after the
 * registry lost us, and the push channel for handshakes.
 */
export class RegistrySession {
  nodeId = 0;
  address: Addr = { network: 0, node: 0 };
  hostname: string;
  /** Why the registry refused the configured hostname (then `hostname` is empty). */
  hostnameError: string | undefined;
  private refusedHostname = '';
  isPublic: boolean;
  /** Whether the last exchange with the registry (registration or heartbeat) succeeded, and why not. */
  reachable = true;
  lastError: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private failures = 0;
  private watch: { stop(): void } | undefined;
  private stopped = false;

  constructor(private readonly o: RegistrySessionOptions) {
    this.hostname = o.hostname ?? '';
    this.isPublic = o.public;
  }

  async start(): Promise<void> {
    await this.register();
    this.o.webhooks.emit('node.registered', { address: this.addressText(), endpoint: this.o.listenAddr });
    this.updateWatch();
    this.schedule();
  }

  /**
   * Whether relayed handshakes arrive by push. Without it (a Go registry) they arrive only when
   * this node polls: after each heartbeat, and more often while a request of ours awaits an answer.
   */
  get watching(): boolean {
    return this.watch !== undefined;
  }

  /** Opens the push channel when the registry (maybe another one since a re-registration) offers it. */
  private updateWatch(): void {
    if (this.stopped) return;
    if (this.o.registry.canWatchHandshakes) {
      this.watch ??= this.o.registry.watchHandshakes(() => this.o.onNotify());
    } else if (this.watch !== undefined) {
      this.watch.stop();
      this.watch = undefined;
    }
  }

  addressText(): string {
    return formatAddr(this.address);
  }

  private async register(): Promise<void> {
    const reply = await this.o.registry.register({
      listenAddr: this.o.listenAddr,
      ...(this.o.owner ? { owner: this.o.owner } : {}),
    });
    const id = reply.node_id;
    if (typeof id !== 'number' || id <= 0) throw new PilotError('protocol', 'registry gave no node id');
    this.nodeId = id;
    const parsed = typeof reply.address === 'string' ? parseAddr(reply.address) : undefined;
    this.address = parsed?.ok ? parsed.value : { network: 0, node: id };
    if (this.isPublic) await this.o.registry.setVisibility(true);
    const wanted = this.hostname || this.refusedHostname;
    if (wanted) {
      try {
        await this.o.registry.setHostname(wanted);
        this.hostname = wanted;
        this.hostnameError = undefined;
        this.refusedHostname = '';
      } catch (err) {
        // Say so everywhere rather than go on showing a name others cannot find us by; a
        // re-registration tries the name again.
        this.hostnameError = `hostname "${wanted}" refused by the registry: ${(err as Error).message}`;
        this.o.log.warn(
          { err: (err as Error).message, hostname: wanted },
          'the registry refused the configured hostname',
        );
        this.refusedHostname = wanted;
        this.hostname = '';
      }
    } else {
      // Not configured here: keep the name the registry still holds for us (set at runtime before a restart).
      const self = await this.o.registry.lookup(id).catch(() => undefined);
      if (typeof self?.hostname === 'string') this.hostname = self.hostname;
    }
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.beat(), this.o.heartbeatMs);
    this.timer.unref();
  }

  private async beat(): Promise<void> {
    try {
      await this.o.registry.heartbeat();
      this.failures = 0;
      this.reachable = true;
      this.lastError = undefined;
      this.o.onHeartbeat();
    } catch (err) {
      this.failures++;
      this.reachable = !(err instanceof PilotError && (err.code === 'connection_failed' || err.code === 'timeout'));
      this.lastError = (err as Error).message;
      this.o.log.warn({ err: (err as Error).message, failures: this.failures }, 'registry heartbeat failed');
      if (this.failures >= FAILURES_BEFORE_REREGISTER || (err instanceof PilotError && err.code === 'not_found')) {
        await this.reregister();
      }
    }
    this.schedule();
  }

  private async reregister(): Promise<void> {
    try {
      await this.register();
      this.failures = 0;
      this.updateWatch();
      this.o.webhooks.emit('node.reregistered', { address: this.addressText() });
      this.o.onReregistered();
    } catch (err) {
      this.o.log.warn({ err: (err as Error).message }, 're-registration failed');
    }
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.watch?.stop();
    this.watch = undefined;
  }
}
