import { dirname, join } from 'node:path';
import { Identity, loadOrCreateIdentity } from '../crypto/identity.js';
import { PilotError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Addr } from '../protocol/address.js';
import { makePacket, Proto, type Packet } from '../protocol/packet.js';
import { Port } from '../protocol/ports.js';
import { RegistryClient } from '../registry/client.js';
import { RegistryKeys, registryKeyFetch } from '../registry-keys.js';
import { dataExchangeStarter } from '../services/dataexchange/service.js';
import { startEcho } from '../services/echo.js';
import { startEventStream } from '../services/eventstream/index.js';
import { startTaskSubmit } from '../services/tasks/service.js';
import type { RunningService, ServiceContext, ServiceStarter } from '../services/types.js';
import { Tunnel } from '../tunnel/tunnel.js';
import type { NodeConfig } from './config.js';
import { EndpointWatch } from './endpoint-watch.js';
import { logEvent } from './event-log.js';
import { forwardToWebhooks } from './event-webhooks.js';
import { HandshakePoller } from './handshake-poller.js';
import { HomeLock } from './home-lock.js';
import { NetStack } from './net-stack.js';
import { PeerCaps } from './peer-caps.js';
import { PeerRouter } from './peer-router.js';
import { RegistrySession } from './registry-session.js';
import { TrustManager } from './trust.js';
import { TrustGate } from './trust-gate.js';
import { TrustStore } from './trust-store.js';
import { WebhookDispatcher } from './webhook.js';

/** Direct traffic this recent proves the path to a peer (the tunnel's evidence window). */
const DIRECT_EVIDENCE_MS = 15_000;

/** The running parts of one node. */
export interface NodeParts {
  readonly identity: Identity;
  readonly registry: RegistryClient;
  readonly webhooks: WebhookDispatcher;
  readonly tunnel: Tunnel;
  readonly endpoint: EndpointWatch;
  readonly session: RegistrySession;
  readonly stack: NetStack;
  readonly gate: TrustGate;
  readonly trust: TrustManager;
  readonly poller: HandshakePoller;
  readonly services: readonly RunningService[];
}

/** Undoes one step of the start; run in reverse order of start. */
export type Stop = () => void | Promise<void>;

/**
 * Starts a node's parts in order: the identity (and its lock), the tunnel, the registry session,
 * the transport stack and its peers' paths, trust, the built-in services. Each started part pushes
 * its stop onto `stops`, so the caller can undo a start that failed halfway, or stop the node.
 */
export async function boot(c: NodeConfig, log: Logger, stops: Stop[]): Promise<NodeParts> {
  let identity: Identity;
  if (c.identity) {
    const lock = await HomeLock.acquire(c.identity);
    stops.push(() => lock.release());
    identity = await loadOrCreateIdentity(c.identity);
  } else {
    identity = Identity.generate();
  }
  const trustStore = await TrustStore.open(c.identity ? join(dirname(c.identity), 'trust.json') : undefined, log);

  const registry = new RegistryClient({
    address: c.registry,
    identity,
    log,
    ...(c.registryTls ? { tls: c.registryTls } : {}),
  });
  stops.push(() => registry.close());
  const keys = new RegistryKeys(registryKeyFetch(registry), { log: log.child({ part: 'keys' }) });
  // Parts made later that earlier ones call back into.
  const late: { session?: RegistrySession; poller?: HandshakePoller; trust?: TrustManager; stack?: NetStack } = {};
  const webhooks = new WebhookDispatcher({
    ...(c.webhook ? { url: c.webhook } : {}),
    nodeId: () => late.session?.nodeId ?? 0,
    log,
    observe: (event, data) => logEvent(log, event, data),
  });
  stops.push(() => webhooks.close().catch(() => undefined));

  const tunnel = await Tunnel.open({
    listen: c.listen,
    identity,
    encrypt: c.encrypt,
    ...(c.beacon ? { beacon: c.beacon } : {}),
    keys,
    log: log.child({ part: 'tunnel' }),
  });
  stops.push(() => tunnel.close().catch(() => undefined));

  const sessionOptions = {
    registry,
    listenAddr: '',
    ...(c.owner ? { owner: c.owner } : {}),
    ...(c.hostname ? { hostname: c.hostname } : {}),
    public: c.public,
    heartbeatMs: c.keepaliveMs,
    log: log.child({ part: 'registry' }),
    webhooks,
    onHeartbeat: () => {
      tunnel.registerWithBeacon();
      void late.poller?.poll();
    },
    onNotify: () => void late.poller?.poll(),
    onReregistered: () => void late.trust?.reportAll(),
  };
  const endpoint = new EndpointWatch({
    tunnel,
    listen: c.listen,
    ...(c.endpoint ? { endpoint: c.endpoint } : {}),
    ...(c.beacon ? { beacon: c.beacon } : {}),
    register: (listenAddr) => {
      sessionOptions.listenAddr = listenAddr;
      registry
        .register({ listenAddr, ...(c.owner ? { owner: c.owner } : {}) })
        .catch((err: unknown) => log.warn({ err: String(err) }, 'could not register the new endpoint'));
    },
    log,
  });
  sessionOptions.listenAddr = await endpoint.discover();
  const session = new RegistrySession(sessionOptions);
  late.session = session;
  stops.push(() => session.stop());
  await session.start();
  tunnel.setNodeId(session.nodeId);
  tunnel.registerWithBeacon();
  endpoint.start();
  stops.push(() => endpoint.stop());

  const router = new PeerRouter({
    links: tunnel,
    resolve: (node) => resolveEndpoint(registry, node),
    onUnreachable: (node, err) => late.stack?.failDialsTo(node, err),
    log: log.child({ part: 'router' }),
  });
  const stack = new NetStack({
    localAddr: session.address,
    transmit: (p) => router.send(p),
    transmitNow: () => tunnel.flushNow(),
    endpoint: {
      connection: { keepaliveMs: c.keepaliveMs, idleTimeoutMs: c.idleTimeoutMs, timeWaitMs: c.timeWaitMs },
      maxConnsPerPort: c.maxConnsPerPort,
      maxConnsTotal: c.maxConnsTotal,
      synRatePerSecond: c.synRateLimit,
      synRatePerSource: c.synRatePerSource,
    },
    log,
    onDialStalled: (node) => {
      if (node === session.nodeId || !c.beacon) return;
      // Fresh traffic from the peer came straight to us lately: the path works, the dial failed for
      // another reason (no listener, a wrong address), and moving to the relay would not help.
      if (tunnel.directSeenWithin(node, DIRECT_EVIDENCE_MS)) return;
      if (tunnel.setRelay(node, true)) log.info({ node }, 'no answer to direct SYNs; relaying through the beacon');
    },
  });
  late.stack = stack;
  stops.push(() => stack.close());

  const caps = new PeerCaps({
    send: (node, payload) => tunnel.send(node, controlPacket(session.address, node, payload)),
    pathAllowsLarge: (node) => tunnel.pathIsLoopback(node),
    apply: (node, mss) => stack.setPeerSegmentSize(node, mss),
    batching: (node, on) => tunnel.setBatching(node, on),
    synData: (node, on) => stack.setPeerTakesSynData(node, on),
  });
  stops.push(() => caps.close());
  // A re-keyed tunnel may be a restarted peer (maybe another implementation): ask again.
  tunnel.on('established', (e: { peerNodeId: number; rekeyed: boolean }) =>
    e.rekeyed ? caps.forget(e.peerNodeId) : caps.refresh(e.peerNodeId),
  );
  tunnel.on('relay-activated', (e: { peerNodeId: number }) => caps.refresh(e.peerNodeId));
  tunnel.on('direct-upgraded', (e: { peerNodeId: number }) => {
    log.info({ node: e.peerNodeId }, 'peer reachable directly again; leaving the relay');
    caps.refresh(e.peerNodeId);
  });
  const gate = new TrustGate({
    isTrusted: (node) => late.trust?.isTrusted(node) ?? false,
    refuse: (p) => stack.refuseUntrusted(p),
  });
  // A packet from the tunnel: capability adverts to the peer table (which applies trust itself),
  // the rest past the trust gate to the stack.
  tunnel.on('packet', (p: Packet, from: number) => {
    if (p.protocol === Proto.Control && p.dstPort === Port.Control) {
      caps.onAdvert(from, p.payload, late.trust?.isTrusted(from) ?? false);
      return;
    }
    if (!gate.admit(p, from)) return;
    caps.observe(from);
    stack.handlePacket(p);
  });
  forwardToWebhooks(stack, tunnel, webhooks);

  const trust = new TrustManager({
    store: trustStore,
    identity,
    selfNode: () => session.nodeId,
    net: stack,
    registry,
    keys,
    onTrusted: (node) => {
      router.retry(node);
      caps.retry(node);
    },
    onRevoked: (node) => {
      caps.forget(node);
      stack.abortPeer(node);
      tunnel.removePeer(node);
    },
    webhooks,
    log: log.child({ part: 'trust' }),
  });
  late.trust = trust;
  const poller = new HandshakePoller({
    poll: () => trust.poll(),
    watching: () => session.watching,
    awaiting: () => trust.awaitingAnswer(),
    log: log.child({ part: 'trust' }),
  });
  late.poller = poller;
  stops.push(() => poller.stop());
  await trust.listen();
  await trust.reportAll();

  const services: RunningService[] = [];
  stops.push(async () => {
    for (const s of services.splice(0)) await s.close().catch(() => undefined);
  });
  if (c.echo) await startEcho(stack);
  const ctx: ServiceContext = {
    net: stack,
    localAddr: session.address,
    home: c.home,
    identity,
    registry,
    keys,
    webhooks,
    log: log.child({ part: 'services' }),
    now: Date.now,
  };
  const enabled: [boolean, ServiceStarter][] = [
    [c.dataExchange, dataExchangeStarter({ quotaBytes: c.inboxQuotaBytes, ratePerSecond: c.inboxRate })],
    [c.eventStream, startEventStream],
    [c.taskSubmit, startTaskSubmit],
  ];
  for (const [on, start] of enabled) if (on) services.push(await start(ctx));

  void poller.poll();
  // After a restart our tunnel keys and UDP port are new and trusted peers still hold the old ones:
  // reach out to each so they learn both now, instead of stalling until we happen to send.
  for (const t of trust.trusted()) stack.ping(t.nodeId);
  return { identity, registry, webhooks, tunnel, endpoint, session, stack, gate, trust, poller, services };
}

/** Runs the stops of a node in reverse order of start. */
export async function runStops(stops: Stop[]): Promise<void> {
  for (const stop of stops.splice(0).reverse()) await stop();
}

async function resolveEndpoint(registry: RegistryClient, node: number): Promise<string> {
  const reply = await registry.resolve(node);
  if (typeof reply.real_addr !== 'string' || reply.real_addr === '')
    throw new PilotError('not_found', `node ${node} has no known endpoint`);
  return reply.real_addr;
}

/** A capability advert (Control packet to port 1, which a Go daemon ignores). */
function controlPacket(address: Addr, node: number, payload: Uint8Array): Packet {
  return makePacket({
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
  });
}
