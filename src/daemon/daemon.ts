import { dirname, join } from 'node:path';
import { Identity, loadOrCreateIdentity } from '../crypto/identity.js';
import { PilotError } from '../errors.js';
import type { Logger } from '../log.js';
import { Proto, makePacket, type Packet } from '../protocol/packet.js';
import type { IpcHandshakeOp } from '../protocol/ipc.js';
import type { JsonObject } from '../protocol/json.js';
import { Port } from '../protocol/ports.js';
import { RegistryClient } from '../registry/client.js';
import { RegistryKeys, registryKeyFetch } from '../registry-keys.js';
import { dataExchangeStarter } from '../services/dataexchange/service.js';
import { startEcho } from '../services/echo.js';
import { startTaskSubmit } from '../services/tasks/service.js';
import { startEventStream } from '../services/eventstream/index.js';
import type { RunningService, ServiceContext, ServiceStarter } from '../services/types.js';
import { Tunnel } from '../tunnel/tunnel.js';
import type { DaemonConfig } from './config.js';
import { logEvent } from './event-log.js';
import { forwardToWebhooks } from './event-webhooks.js';
import { HandshakePoller } from './handshake-poller.js';
import { buildInfo } from './info.js';
import { IpcServer } from './ipc-server.js';
import type { IpcBackend } from './ipc-session.js';
import { NetStack } from './net-stack.js';
import { PeerRouter } from './peer-router.js';
import { RegistrySession } from './registry-session.js';
import { PeerCaps } from './peer-caps.js';
import { TrustManager } from './trust.js';
import { TrustGate } from './trust-gate.js';
import { TrustStore } from './trust-store.js';
import { WebhookDispatcher } from './webhook.js';

/** Direct traffic this recent proves the path to a peer (the tunnel's evidence window). */
const DIRECT_EVIDENCE_MS = 15_000;
/** NAT behaviour is checked again this often (and when the beacon sees us at a new endpoint). */
const NAT_RECHECK_MS = 10 * 60_000;
/** An endpoint that says nothing about how others reach us. */
const UNROUTABLE_ENDPOINT = /^(127\.|0\.0\.0\.0|\[?::1?\]?:)/;
/** How long `pending` waits for a poll of the registry before listing what it has. */
const PENDING_REFRESH_MS = 3000;

/**
 * The composition root: one tunnel, one transport stack, the registry session, trust, the
 * built-in services and the IPC server, started in that order and stopped in reverse.
 */
export class Daemon {
  private readonly startedAt = Date.now();
  private readonly keys: RegistryKeys;
  private stack!: NetStack;
  private tunnel!: Tunnel;
  private router!: PeerRouter;
  private caps!: PeerCaps;
  private session!: RegistrySession;
  private trust!: TrustManager;
  private poller!: HandshakePoller;
  private ipc!: IpcServer;
  private readonly registry: RegistryClient;
  private readonly webhooks: WebhookDispatcher;
  private stopped = false;
  private readonly services: RunningService[] = [];
  private gate!: TrustGate;
  /** The UDP endpoint the registry holds for us. */
  private registeredEndpoint = '';
  private natTimer: NodeJS.Timeout | undefined;
  private natRunning = false;

  private constructor(
    readonly config: DaemonConfig,
    readonly identity: Identity,
    private readonly trustStore: TrustStore,
    private readonly log: Logger,
  ) {
    this.registry = new RegistryClient({
      address: config.registry,
      identity,
      log,
      ...(config.registryTls ? { tls: config.registryTls } : {}),
    });
    this.keys = new RegistryKeys(registryKeyFetch(this.registry), { log: log.child({ part: 'keys' }) });
    this.webhooks = new WebhookDispatcher({
      ...(config.webhook ? { url: config.webhook } : {}),
      nodeId: () => this.session?.nodeId ?? 0,
      log,
      observe: (event, data) => logEvent(log, event, data),
    });
  }

  static async start(config: DaemonConfig, log: Logger): Promise<Daemon> {
    const identity = config.identity ? await loadOrCreateIdentity(config.identity) : Identity.generate();
    const trustPath = config.identity ? join(dirname(config.identity), 'trust.json') : undefined;
    const daemon = new Daemon(config, identity, await TrustStore.open(trustPath, log), log);
    try {
      await daemon.boot();
    } catch (err) {
      await daemon.stop();
      throw err;
    }
    return daemon;
  }

  get nodeId(): number {
    return this.session.nodeId;
  }

  get address(): string {
    return this.session.addressText();
  }

  get socketPath(): string {
    return this.config.socket;
  }

  private async boot(): Promise<void> {
    const c = this.config;
    this.tunnel = await Tunnel.open({
      listen: c.listen,
      identity: this.identity,
      encrypt: c.encrypt,
      ...(c.beacon ? { beacon: c.beacon } : {}),
      keys: this.keys,
      log: this.log.child({ part: 'tunnel' }),
    });
    const endpoint = await this.endpointToRegister();
    this.registeredEndpoint = endpoint;
    const sessionOptions = {
      registry: this.registry,
      listenAddr: endpoint,
      ...(c.owner ? { owner: c.owner } : {}),
      ...(c.hostname ? { hostname: c.hostname } : {}),
      public: c.public,
      heartbeatMs: c.keepaliveMs,
      log: this.log.child({ part: 'registry' }),
      webhooks: this.webhooks,
      onHeartbeat: () => {
        this.tunnel.registerWithBeacon();
        void this.poller.poll();
      },
      onNotify: () => void this.poller.poll(),
      onReregistered: () => void this.trust.reportAll(),
    };
    this.session = new RegistrySession(sessionOptions);
    await this.session.start();
    this.tunnel.setNodeId(this.session.nodeId);
    this.tunnel.registerWithBeacon();
    this.tunnel.on('observed-endpoint', (e: { endpoint: string }) => {
      if (this.stopped || c.endpoint || UNROUTABLE_ENDPOINT.test(e.endpoint) || e.endpoint === this.registeredEndpoint)
        return;
      // Our NAT gave us a new public endpoint (rebinding, a new address): tell the registry, so that
      // new peers find us, and look at the NAT again. Peers we talk to follow by themselves.
      const previous = this.registeredEndpoint;
      this.registeredEndpoint = e.endpoint;
      sessionOptions.listenAddr = e.endpoint;
      this.log.info({ previous, endpoint: e.endpoint }, 'the beacon sees us at a new endpoint; registering it');
      this.registry
        .register({ listenAddr: e.endpoint, ...(c.owner ? { owner: c.owner } : {}) })
        .catch((err: unknown) => this.log.warn({ err: String(err) }, 'could not register the new endpoint'));
      this.checkNat();
    });
    if (c.beacon) {
      this.checkNat();
      this.natTimer = setInterval(() => this.checkNat(), NAT_RECHECK_MS);
      this.natTimer.unref();
    }

    this.router = new PeerRouter({
      links: this.tunnel,
      resolve: (node) => this.resolveEndpoint(node),
      onUnreachable: (node, err) => this.stack.failDialsTo(node, err),
      log: this.log.child({ part: 'router' }),
    });
    this.stack = new NetStack({
      localAddr: this.session.address,
      transmit: (p) => this.router.send(p),
      endpoint: {
        connection: { keepaliveMs: c.keepaliveMs, idleTimeoutMs: c.idleTimeoutMs, timeWaitMs: c.timeWaitMs },
        maxConnsPerPort: c.maxConnsPerPort,
        maxConnsTotal: c.maxConnsTotal,
        synRatePerSecond: c.synRateLimit,
        synRatePerSource: c.synRatePerSource,
      },
      log: this.log,
      onDialStalled: (node) => {
        if (node === this.session.nodeId || !this.config.beacon) return;
        // Fresh traffic from the peer came straight to us lately: the path works, the dial failed for
        // another reason (no listener, a wrong address), and moving to the relay would not help.
        if (this.tunnel.directSeenWithin(node, DIRECT_EVIDENCE_MS)) return;
        if (this.tunnel.setRelay(node, true))
          this.log.info({ node }, 'no answer to direct SYNs; relaying through the beacon');
      },
    });
    this.caps = new PeerCaps({
      send: (node, payload) => this.sendControl(node, payload),
      pathAllowsLarge: (node) => this.tunnel.pathIsLoopback(node),
      apply: (node, mss) => this.stack.setPeerSegmentSize(node, mss),
      batching: (node, on) => this.tunnel.setBatching(node, on),
    });
    // A re-keyed tunnel may be a restarted peer (maybe another implementation): ask again.
    this.tunnel.on('established', (e: { peerNodeId: number; rekeyed: boolean }) =>
      e.rekeyed ? this.caps.forget(e.peerNodeId) : this.caps.refresh(e.peerNodeId),
    );
    this.tunnel.on('relay-activated', (e: { peerNodeId: number }) => this.caps.refresh(e.peerNodeId));
    this.tunnel.on('direct-upgraded', (e: { peerNodeId: number }) => {
      this.log.info({ node: e.peerNodeId }, 'peer reachable directly again; leaving the relay');
      this.caps.refresh(e.peerNodeId);
    });
    this.gate = new TrustGate({
      isTrusted: (node) => this.trust.isTrusted(node),
      refuse: (p) => this.stack.refuseUntrusted(p),
    });
    this.tunnel.on('packet', (p: Packet, from: number) => this.onPacket(p, from));
    forwardToWebhooks(this.stack, this.tunnel, this.webhooks);

    this.trust = new TrustManager({
      store: this.trustStore,
      identity: this.identity,
      selfNode: () => this.session.nodeId,
      net: this.stack,
      registry: this.registry,
      keys: this.keys,
      onTrusted: (node) => this.router.retry(node),
      onRevoked: (node) => {
        this.caps.forget(node);
        this.stack.abortPeer(node);
        this.tunnel.removePeer(node);
      },
      webhooks: this.webhooks,
      log: this.log.child({ part: 'trust' }),
    });
    this.poller = new HandshakePoller({
      poll: () => this.trust.poll(),
      watching: () => this.session.watching,
      awaiting: () => this.trust.awaitingAnswer(),
      log: this.log.child({ part: 'trust' }),
    });
    await this.trust.listen();
    await this.trust.reportAll();
    if (c.echo) await startEcho(this.stack);
    await this.startServices();

    this.ipc = await IpcServer.start(c.socket, this.backend(), this.log.child({ part: 'ipc' }));
    this.stack.onDatagram((d) => {
      this.webhooks.emit('data.datagram', {
        dst_port: d.dstPort,
        size: d.data.length,
        src_addr: `${d.srcAddr.network}:${d.srcAddr.node}`,
        src_port: d.srcPort,
      });
      this.ipc.broadcastDatagram(d);
    });
    void this.poller.poll();
    this.greetTrustedPeers();
  }

  private async startServices(): Promise<void> {
    const ctx: ServiceContext = {
      net: this.stack,
      localAddr: this.session.address,
      home: this.config.home,
      identity: this.identity,
      registry: this.registry,
      keys: this.keys,
      webhooks: this.webhooks,
      log: this.log.child({ part: 'services' }),
      now: Date.now,
    };
    const enabled: [boolean, ServiceStarter][] = [
      [
        this.config.dataExchange,
        dataExchangeStarter({ quotaBytes: this.config.inboxQuotaBytes, ratePerSecond: this.config.inboxRate }),
      ],
      [this.config.eventStream, startEventStream],
      [this.config.taskSubmit, startTaskSubmit],
    ];
    for (const [on, start] of enabled) if (on) this.services.push(await start(ctx));
  }

  /**
   * After a restart our tunnel keys and UDP port are new and trusted peers still hold the old ones:
   * reach out to each so they learn both now, instead of stalling until we happen to send.
   */
  private greetTrustedPeers(): void {
    for (const t of this.trust.trusted()) this.stack.ping(t.nodeId);
  }

  /** Finds our NAT's behaviour in the background (shown by info). */
  private checkNat(): void {
    if (this.natRunning || this.stopped) return;
    this.natRunning = true;
    this.tunnel
      .detectNat()
      .then(
        (nat) =>
          this.log.info(
            { nat: nat.type, mapping: nat.mapping, filtering: nat.filtering, endpoint: nat.publicEndpoint },
            'NAT behaviour',
          ),
        (err: unknown) => this.log.warn({ err: String(err) }, 'NAT detection failed'),
      )
      .finally(() => (this.natRunning = false));
  }

  /** `nat` of info: what is known of the NAT in front of us. */
  private natInfo(): JsonObject {
    const nat = this.tunnel.nat;
    return {
      type: nat?.type ?? 'unknown',
      mapping: nat?.mapping ?? 'unknown',
      filtering: nat?.filtering ?? 'unknown',
      public_endpoint: this.tunnel.observedEndpoint ?? nat?.publicEndpoint ?? '',
      registered_endpoint: this.registeredEndpoint,
      ...(nat ? { checked_secs_ago: Math.floor((Date.now() - nat.checkedAt) / 1000) } : {}),
    };
  }

  /** The UDP endpoint other nodes should use: -endpoint, else what the beacon saw, else our socket. */
  private async endpointToRegister(): Promise<string> {
    if (this.config.endpoint) return this.config.endpoint;
    const local = `127.0.0.1:${this.tunnel.localPort}`;
    const listenHost = this.config.listen.slice(0, this.config.listen.lastIndexOf(':')).replace(/^\[|\]$/g, '');
    const observed = this.config.beacon ? await this.tunnel.discoverEndpoint(1000).catch(() => undefined) : undefined;
    if (observed && !/^(127\.|0\.0\.0\.0|\[?::1?\]?:)/.test(observed)) return observed;
    if (listenHost && listenHost !== '0.0.0.0' && listenHost !== '::') {
      return listenHost.includes(':')
        ? `[${listenHost}]:${this.tunnel.localPort}`
        : `${listenHost}:${this.tunnel.localPort}`;
    }
    return local;
  }

  /** A packet from the tunnel: past the trust gate, capability adverts to the peer table, the rest to the stack. */
  private onPacket(p: Packet, from: number): void {
    if (!this.gate.admit(p, from)) return;
    if (p.protocol === Proto.Control && p.dstPort === Port.Control) {
      this.caps.onAdvert(from, p.payload);
      return;
    }
    this.caps.observe(from);
    this.stack.handlePacket(p);
  }

  /** A capability advert (Control packet to port 1, which a Go daemon ignores). */
  private sendControl(node: number, payload: Uint8Array): void {
    const { address } = this.session;
    this.tunnel.send(
      node,
      makePacket({
        flags: 0,
        protocol: Proto.Control,
        src: address,
        dst: { network: address.network, node },
        srcPort: Port.Control,
        dstPort: Port.Control,
        seq: 0,
        ack: 0,
        window: 0,
        payload,
      }),
    );
  }

  private async resolveEndpoint(node: number): Promise<string> {
    const reply = await this.registry.resolve(node);
    if (typeof reply.real_addr !== 'string' || reply.real_addr === '')
      throw new PilotError('not_found', `node ${node} has no known endpoint`);
    return reply.real_addr;
  }

  info(): JsonObject {
    return buildInfo({
      address: this.session.address,
      hostname: this.session.hostname,
      startedAt: this.startedAt,
      encrypt: this.config.encrypt,
      identityPersisted: this.config.identity !== undefined,
      publicKey: this.identity.publicKeyBase64,
      owner: this.config.owner ?? '',
      ports: this.stack.endpoint.ports.boundPorts.length,
      connections: this.stack.endpoint.connections(),
      resources: this.stack.resources(),
      peers: this.tunnel.peers(),
      tunnel: this.tunnel.stats,
      extra: {
        untrusted_refused: this.gate.refused,
        syn_refused: { ...this.stack.endpoint.refusals },
        webhook_dropped: this.webhooks.dropped,
        frames_sent: { ...this.tunnel.stats.sent },
        services: Object.fromEntries(this.services.map((s) => [s.name, s.stats()])),
        public: this.session.isPublic,
        ...(this.session.hostnameError !== undefined ? { hostname_error: this.session.hostnameError } : {}),
        ...(this.config.beacon
          ? {
              beacon: {
                address: this.config.beacon,
                proven: this.tunnel.provenAtBeaconWithin(2 * this.config.keepaliveMs + 10_000),
              },
            }
          : {}),
        nat: this.natInfo(),
        registry: {
          address: this.config.registry,
          reachable: this.session.reachable,
          ...(this.session.lastError !== undefined ? { last_error: this.session.lastError } : {}),
          signatures: this.registry.signsBody ? 'signed-body' : 'static',
          push: this.session.watching,
        },
      },
    });
  }

  private backend(): IpcBackend {
    return {
      listen: (port) => this.stack.listen(port),
      dial: (addr, port, options) => this.stack.dial(addr, port, options),
      sendTo: (addr, port, data) => this.stack.sendTo(addr, port, data),
      connection: (id) => this.stack.connection(id),
      info: () => this.info(),
      handshake: (op) => this.handshake(op),
      resolveHostname: (name) => this.registry.resolveHostname(name),
      setHostname: async (name) => {
        const reply = await this.registry.setHostname(name);
        this.session.hostname = name;
        this.session.hostnameError = undefined;
        return reply;
      },
      setVisibility: async (isPublic) => {
        const reply = await this.registry.setVisibility(isPublic);
        this.session.isPublic = isPublic;
        return reply;
      },
      deregister: () => this.registry.deregister(),
      setTags: (tags) => {
        if (tags.length > 3) throw new PilotError('invalid_argument', 'at most 3 tags');
        return this.registry.setTags([...tags]);
      },
      setWebhook: async (url) => {
        this.webhooks.setUrl(url || undefined);
        return { webhook: url };
      },
      setTaskExec: (enabled) => this.registry.setTaskExec(enabled),
    };
  }

  private async handshake(op: IpcHandshakeOp): Promise<JsonObject> {
    switch (op.sub) {
      case 'Request': {
        const reply = await this.trust.request(op.nodeId, op.justification);
        this.poller.requestSent();
        return reply;
      }
      case 'Approve':
        return this.trust.approve(op.nodeId);
      case 'Reject':
        return this.trust.reject(op.nodeId, op.reason);
      case 'Revoke':
        return this.trust.revoke(op.nodeId);
      case 'Pending':
        // Without push from the registry, fetch what it holds first (bounded: listing must stay quick).
        await this.poller.refresh(PENDING_REFRESH_MS);
        return {
          pending: this.trust.pending().map((p) => ({
            justification: p.justification,
            node_id: p.nodeId,
            public_key: p.publicKey,
            received_at: Math.floor(p.receivedAt / 1000),
          })),
        };
      case 'Trusted':
        return {
          trusted: this.trust.trusted().map((t) => ({
            approved_at: Math.floor(t.approvedAt / 1000),
            mutual: t.mutual,
            network: t.network,
            node_id: t.nodeId,
            public_key: t.publicKey,
          })),
        };
      case 'Outgoing':
        // Answers may be waiting at the registry (no push from a Go registry): fetch them first.
        await this.poller.refresh(PENDING_REFRESH_MS);
        return {
          outgoing: this.trust.outgoingRequests().map((r) => ({
            node_id: r.nodeId,
            sent_at: Math.floor(r.sentAt / 1000),
            state: r.state,
            ...(r.answeredAt !== undefined ? { answered_at: Math.floor(r.answeredAt / 1000) } : {}),
            ...(r.reason !== undefined ? { reason: r.reason } : {}),
          })),
        };
    }
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearInterval(this.natTimer);
    this.session?.stop();
    this.poller?.stop();
    for (const s of this.services.splice(0)) await s.close().catch(() => undefined);
    await this.ipc?.close().catch(() => undefined);
    this.stack?.close();
    await this.tunnel?.close().catch(() => undefined);
    this.registry.close();
    await this.webhooks.close().catch(() => undefined);
  }
}
