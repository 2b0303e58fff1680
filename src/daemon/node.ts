import { PilotError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Addr } from '../protocol/address.js';
import type { IpcHandshakeOp } from '../protocol/ipc.js';
import type { JsonObject } from '../protocol/json.js';
import type { Datagram, DialOptions, PilotConn, PilotListener, RawConn, RawConnEvents } from '../pilot-net.js';
import type { NodeCore } from '../pilot-node.js';
import type { NodeConfig } from './config.js';
import { buildInfo } from './info.js';
import { boot, runStops, type NodeParts, type Stop } from './node-boot.js';
import { trustOp } from './trust-ops.js';

/**
 * One running node: tunnel, transport stack, registry session, trust and the built-in services,
 * as `boot` starts them. Hosted by the daemon process (behind its IPC server) or embedded in an
 * application's process; both use it through `NodeCore`.
 */
export class RunningNode implements NodeCore {
  private readonly startedAt = Date.now();
  private closing: Promise<void> | undefined;

  private constructor(
    readonly config: NodeConfig,
    private readonly parts: NodeParts,
    private readonly stops: Stop[],
  ) {}

  static async start(config: NodeConfig, log: Logger): Promise<RunningNode> {
    const stops: Stop[] = [];
    try {
      return new RunningNode(config, await boot(config, log, stops), stops);
    } catch (err) {
      await runStops(stops);
      throw err;
    }
  }

  get nodeId(): number {
    return this.parts.session.nodeId;
  }

  get localAddr(): Addr {
    return this.parts.session.address;
  }

  /** The address as text (`0:0000.0000.0001`). */
  get address(): string {
    return this.parts.session.addressText();
  }

  get closed(): boolean {
    return this.closing !== undefined;
  }

  listen(port: number): Promise<PilotListener> {
    return this.parts.stack.listen(port);
  }

  dial(addr: Addr, port: number, options?: DialOptions): Promise<PilotConn> {
    return this.parts.stack.dial(addr, port, options);
  }

  sendTo(addr: Addr, port: number, data: Uint8Array): Promise<void> {
    return this.parts.stack.sendTo(addr, port, data);
  }

  dialRaw(addr: Addr, port: number, options: DialOptions, events: RawConnEvents): Promise<RawConn> {
    return this.parts.stack.dialRaw(addr, port, options, events);
  }

  serveRaw(port: number, accept: (conn: RawConn) => RawConnEvents): Promise<PilotListener> {
    return this.parts.stack.serveRaw(port, accept);
  }

  disconnect(connId: number): boolean {
    return this.parts.stack.disconnect(connId);
  }

  onDatagram(handler: (d: Datagram) => void): () => void {
    return this.parts.stack.onDatagram(handler);
  }

  handshake(op: IpcHandshakeOp): Promise<JsonObject> {
    return trustOp(this.parts.trust, this.parts.poller, op);
  }

  resolveHostname(name: string): Promise<JsonObject> {
    return this.parts.registry.resolveHostname(name);
  }

  async setHostname(name: string): Promise<JsonObject> {
    const reply = await this.parts.registry.setHostname(name);
    this.parts.session.hostname = name;
    this.parts.session.hostnameError = undefined;
    return reply;
  }

  async setVisibility(isPublic: boolean): Promise<JsonObject> {
    const reply = await this.parts.registry.setVisibility(isPublic);
    this.parts.session.isPublic = isPublic;
    return reply;
  }

  deregister(): Promise<JsonObject> {
    return this.parts.registry.deregister();
  }

  setTags(tags: readonly string[]): Promise<JsonObject> {
    if (tags.length > 3) throw new PilotError('invalid_argument', 'at most 3 tags');
    return this.parts.registry.setTags([...tags]);
  }

  async setWebhook(url: string): Promise<JsonObject> {
    this.parts.webhooks.setUrl(url || undefined);
    return { webhook: url };
  }

  setTaskExec(enabled: boolean): Promise<JsonObject> {
    return this.parts.registry.setTaskExec(enabled);
  }

  info(): JsonObject {
    const { config: c } = this;
    const { stack, tunnel, session, registry, gate, webhooks, services, identity, endpoint } = this.parts;
    return buildInfo({
      address: session.address,
      hostname: session.hostname,
      startedAt: this.startedAt,
      encrypt: c.encrypt,
      identityPersisted: c.identity !== undefined,
      publicKey: identity.publicKeyBase64,
      owner: c.owner ?? '',
      ports: stack.endpoint.ports.boundPorts.length,
      connections: stack.endpoint.connections(),
      resources: stack.resources(),
      peers: tunnel.peers(),
      tunnel: tunnel.stats,
      extra: {
        untrusted_refused: gate.refused,
        syn_refused: { ...stack.endpoint.refusals },
        webhook_dropped: webhooks.dropped,
        frames_sent: { ...tunnel.stats.sent },
        services: Object.fromEntries(services.map((s) => [s.name, s.stats()])),
        public: session.isPublic,
        ...(session.hostnameError !== undefined ? { hostname_error: session.hostnameError } : {}),
        ...(c.beacon
          ? { beacon: { address: c.beacon, proven: tunnel.provenAtBeaconWithin(2 * c.keepaliveMs + 10_000) } }
          : {}),
        nat: endpoint.info(),
        registry: {
          address: c.registry,
          reachable: session.reachable,
          ...(session.lastError !== undefined ? { last_error: session.lastError } : {}),
          signatures: registry.signsBody ? 'signed-body' : 'static',
          push: session.watching,
        },
      },
    });
  }

  /** Stops every part in reverse order of start (once; later calls wait for the first). */
  close(): Promise<void> {
    this.closing ??= runStops(this.stops);
    return this.closing;
  }
}
