import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from '../log.js';
import type { ReplicationOptions } from '../registry/replication.js';
import { RegistryServer } from '../registry/server.js';
import { BeaconServer } from './server.js';
import { taskClock } from '../services/tasks/clock.js';

export interface RendezvousOptions {
  /** Interface for the registry's TCP listener; every interface when absent. */
  registryHost?: string;
  registryPort: number;
  /** Interface for the beacon's UDP socket; every interface when absent. */
  beaconHost?: string;
  beaconPort: number;
  storePath: string;
  adminToken?: string;
  beaconId?: number;
  beaconPeers?: string[];
  /** Registry lines get `component: registry`, beacon lines `component: beacon`. */
  log?: Logger;
  /** Registry replication: a token for standbys, or the primary this registry is a standby of. */
  replication?: ReplicationOptions;
}

export interface Rendezvous {
  readonly registryPort: number;
  readonly beaconPort: number;
  readonly registry: RegistryServer;
  readonly beacon: BeaconServer;
  close(): Promise<void>;
}

/** A registry and a beacon in one process, as `pilot-rendezvous` and an embedding daemon run them. */
export async function startRendezvous(opts: RendezvousOptions): Promise<Rendezvous> {
  if (opts.storePath !== ':memory:') await mkdir(dirname(opts.storePath), { recursive: true, mode: 0o700 });
  const registry = await RegistryServer.start({
    host: opts.registryHost,
    port: opts.registryPort,
    storePath: opts.storePath,
    log: opts.log?.child({ component: 'registry' }),
    adminToken: opts.adminToken,
    taskClock: taskClock(Date.now),
    replication: opts.replication,
  });
  let beacon: BeaconServer;
  try {
    beacon = await BeaconServer.start({
      host: opts.beaconHost,
      port: opts.beaconPort,
      beaconId: opts.beaconId,
      peers: opts.beaconPeers,
      log: opts.log?.child({ component: 'beacon' }),
    });
  } catch (err) {
    await registry.close();
    throw err;
  }
  let closing: Promise<void> | undefined;
  return {
    registryPort: registry.port,
    beaconPort: beacon.port,
    registry,
    beacon,
    close: () => (closing ??= Promise.all([beacon.close(), registry.close()]).then(() => undefined)),
  };
}
