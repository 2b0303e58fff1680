import type { Identity } from '../crypto/identity.js';
import type { WebhookSink } from '../webhook-sink.js';
import type { Logger } from '../log.js';
import type { Addr } from '../protocol/address.js';
import type { JsonObject } from '../protocol/json.js';
import type { RegistryClient } from '../registry/client.js';
import type { PilotNetwork } from '../pilot-net.js';
import type { RegistryKeys } from '../registry-keys.js';

/** What the daemon hands every built-in service. */
export interface ServiceContext {
  /** The daemon's in-process network: connections here carry the authenticated peer address. */
  readonly net: PilotNetwork;
  readonly localAddr: Addr;
  /** Pilot home: inbox/, received/, outbox/, tasks/ live under it. */
  readonly home: string;
  readonly identity: Identity;
  readonly registry: RegistryClient;
  /** The Ed25519 keys the registry holds for nodes (shared with the tunnel and trust). */
  readonly keys: RegistryKeys;
  readonly webhooks: WebhookSink;
  readonly log: Logger;
  /** Wall clock in Unix ms; injectable so tests need not wait for real timeouts. */
  readonly now: () => number;
}

export interface RunningService {
  readonly name: string;
  /** Counters shown under `services.<name>` in `pilotctl info`. */
  stats(): JsonObject;
  close(): Promise<void>;
}

export type ServiceStarter = (ctx: ServiceContext) => Promise<RunningService>;
