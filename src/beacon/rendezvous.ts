import { dirname } from 'node:path';
import { ensureDir } from '../crypto/atomic-file.js';
import { fromBase64 } from '../crypto/base64.js';
import { PilotError } from '../errors.js';
import type { Logger } from '../log.js';
import { startDashboard, type Dashboard } from '../registry/dashboard.js';
import type { ReplicationOptions } from '../registry/replication.js';
import { isStoreUrl } from '../registry/open-store.js';
import { RegistryServer } from '../registry/server.js';
import type { DiscoverySettings } from './discovery.js';
import { joinHostPort } from '../protocol/host-port.js';
import { isWildcardHost } from './peer-set.js';
import { loadRegistryTls, type RegistryTlsSource } from '../registry/tls.js';
import type { BeaconDirectory } from './core.js';
import { BeaconServer } from './server.js';
import { taskClock } from '../config/test-clock.js';

export interface RendezvousOptions {
  /** Interface for the registry's TCP listener; every interface when absent. */
  registryHost?: string;
  registryPort: number;
  /** Interface for the beacon's UDP socket; every interface when absent. */
  beaconHost?: string;
  beaconPort: number;
  storePath: string;
  adminToken?: string;
  /** Accept only signed request bodies (see RegistryServerOptions.requireSignedBody). */
  requireSignedBody?: boolean;
  /** Serve the registry over TLS with this certificate source. */
  tls?: RegistryTlsSource;
  beaconId?: number;
  beaconPeers?: string[];
  /**
   * Register the beacon with this process's registry and gossip with the other beacons registered
   * there (needs a non-zero `beaconId`). Set `advertise` unless every beacon runs on this host:
   * the registry is reached over loopback, so the derived address would be a loopback one.
   */
  beaconDiscovery?: Omit<DiscoverySettings, 'registry'>;
  /** Registry lines get `component: registry`, beacon lines `component: beacon`. */
  log?: Logger;
  /** Serves the registry dashboard (`-http`) on this address when given; host '' = every interface. */
  dashboard?: { host: string; port: number };
  /** Registry replication: a token for standbys, or the primary this registry is a standby of. */
  replication?: ReplicationOptions;
  /** The beacon relays and punches only for nodes that proved their id (no Go daemons). */
  requireBeaconProof?: boolean;
  /** The beacon's NAT probes (see `BeaconServerOptions.natProbe`). */
  beaconNatProbe?: false | { otherAddress?: string };
}

export interface Rendezvous {
  readonly registryPort: number;
  readonly beaconPort: number;
  readonly registry: RegistryServer;
  readonly beacon: BeaconServer;
  readonly dashboard: Dashboard | undefined;
  close(): Promise<void>;
}

/** The registry of this process as the beacon's directory: keys, visibility and trust, read directly. */
function registryDirectory(registry: RegistryServer): BeaconDirectory {
  return {
    facts: (nodeId) => {
      const facts = registry.nodeFacts(nodeId);
      const key = facts === undefined ? undefined : fromBase64(facts.publicKey);
      return facts === undefined || key === undefined ? undefined : { publicKey: key, isPublic: facts.isPublic };
    },
    trustPair: (a, b) => registry.trustPair(a, b),
  };
}

/** A registry and a beacon in one process, as `pilot-rendezvous` and an embedding daemon run them. */
export async function startRendezvous(opts: RendezvousOptions): Promise<Rendezvous> {
  if (opts.beaconDiscovery && !opts.beaconId) {
    throw new PilotError('invalid_argument', 'beacon discovery needs a non-zero beacon id');
  }
  if (opts.storePath !== ':memory:' && !isStoreUrl(opts.storePath)) await ensureDir(dirname(opts.storePath), 0o700);
  const tls =
    opts.tls === undefined
      ? undefined
      : await loadRegistryTls(opts.tls, { storePath: opts.storePath, listenHost: opts.registryHost ?? '' });
  const registryLog = opts.log?.child({ component: 'registry' });
  if (tls !== undefined)
    registryLog?.info(
      { origin: tls.origin, cert: tls.certPath, not_after: tls.notAfter.toISOString() },
      'registry TLS certificate',
    );
  const registry = await RegistryServer.start({
    host: opts.registryHost,
    port: opts.registryPort,
    storePath: opts.storePath,
    log: registryLog,
    adminToken: opts.adminToken,
    requireSignedBody: opts.requireSignedBody,
    taskClock: taskClock(Date.now),
    ...(tls !== undefined ? { tls } : {}),
    replication: opts.replication,
  });
  let beacon: BeaconServer;
  try {
    beacon = await BeaconServer.start({
      host: opts.beaconHost,
      port: opts.beaconPort,
      beaconId: opts.beaconId,
      peers: opts.beaconPeers,
      discovery: opts.beaconDiscovery && {
        ...opts.beaconDiscovery,
        registry: joinHostPort(isWildcardHost(registry.host) ? '127.0.0.1' : registry.host, registry.port),
      },
      log: opts.log?.child({ component: 'beacon' }),
      directory: registryDirectory(registry),
      ...(opts.requireBeaconProof === true ? { requireProof: true } : {}),
      ...(opts.beaconNatProbe !== undefined ? { natProbe: opts.beaconNatProbe } : {}),
    });
  } catch (err) {
    await registry.close();
    throw err;
  }
  let dashboard: Dashboard | undefined;
  if (opts.dashboard !== undefined) {
    try {
      dashboard = await startDashboard({
        ...opts.dashboard,
        source: registry,
        log: opts.log?.child({ component: 'dashboard' }),
      });
    } catch (err) {
      await Promise.all([beacon.close(), registry.close()]);
      throw err;
    }
  }
  let closing: Promise<void> | undefined;
  return {
    registryPort: registry.port,
    beaconPort: beacon.port,
    registry,
    beacon,
    dashboard,
    close: () =>
      (closing ??= Promise.all([dashboard?.close(), beacon.close(), registry.close()]).then(() => undefined)),
  };
}
