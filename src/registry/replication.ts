import { PilotError } from '../errors.js';
import type { JsonObject } from '../protocol/json.js';
import type { RegistryConnection } from './connection.js';
import type { RegistryState } from './context.js';
import { joinHostPort } from '../protocol/host-port.js';
import { FrameSocket, parseRegistryAddress, type HostPort } from './frame-socket.js';
import { ReplicationPrimary } from './replication-primary.js';
import { ReplicationStandby, type PrimaryConnector } from './replication-standby.js';
import { RequestError } from './request-error.js';
import { EXT_BEACONS, EXT_LAST_SEEN } from './snapshot-format.js';
import { normalizeFingerprint } from './tls-pin.js';
import { exportSnapshot, formatTime } from './snapshot-export.js';

/** Replication settings of a registry (our extension: the reference has no flag for the token). */
export interface ReplicationOptions {
  /** A primary serves `subscribe_replication` only with a token; a standby presents it. */
  readonly token?: string;
  /** `host:port` of the primary: this registry is its read-only standby. */
  readonly standbyOf?: string;
  /** The primary serves TLS: its certificate fingerprint (SHA-256 of the DER), pinned as a daemon pins it. */
  readonly primaryFingerprint?: string;
  /** How a standby connects to its primary (plain TCP, or TLS with `primaryFingerprint`, by default). */
  readonly connect?: PrimaryConnector;
}

/** Tokens shorter than this are refused: a standby gets the whole state, endpoints included. */
export const MIN_REPLICATION_TOKEN = 16;
const MAX_REPLICATION_TOKEN = 1024;

export interface CheckedReplication {
  readonly token: string | undefined;
  readonly primary: HostPort | undefined;
  readonly connect: PrimaryConnector | undefined;
}

/** Validates the settings before anything is opened; throws PilotError `invalid_argument`. */
export function checkReplicationOptions(opts: ReplicationOptions | undefined): CheckedReplication {
  const token = opts?.token === '' ? undefined : opts?.token;
  if (token !== undefined && (token.length < MIN_REPLICATION_TOKEN || token.length > MAX_REPLICATION_TOKEN)) {
    throw new PilotError(
      'invalid_argument',
      `the replication token must be ${MIN_REPLICATION_TOKEN} to ${MAX_REPLICATION_TOKEN} characters long`,
      'generate one, e.g. with: openssl rand -hex 32',
    );
  }
  const primary =
    opts?.standbyOf === undefined || opts.standbyOf === '' ? undefined : parseRegistryAddress(opts.standbyOf);
  if (primary !== undefined && token === undefined) {
    throw new PilotError(
      'invalid_argument',
      "a standby needs the primary's replication token",
      'pass -replication-token with the token the primary was started with',
    );
  }
  const pinText = opts?.primaryFingerprint === '' ? undefined : opts?.primaryFingerprint;
  if (pinText !== undefined && primary === undefined) {
    throw new PilotError(
      'invalid_argument',
      'a primary fingerprint needs -standby',
      'pass -standby <primary host:port> too',
    );
  }
  const pin = pinText === undefined ? undefined : { fingerprint: normalizeFingerprint(pinText, 'standby fingerprint') };
  const connect =
    opts?.connect ?? (pin && ((target: HostPort, timeoutMs: number) => FrameSocket.connect(target, timeoutMs, pin)));
  return { token, primary, connect };
}

/** What the server calls: subscriptions, change notices, shutdown. */
export interface Replication {
  subscribe(conn: RegistryConnection, msg: JsonObject): void;
  changed(): void;
  close(): void;
}

/** The state as a snapshot, with the liveness and beacons only a running registry knows. */
export async function liveSnapshot(state: RegistryState): Promise<JsonObject> {
  const now = state.now();
  const [contents, beacons] = await Promise.all([state.store.exportState(), state.store.listBeacons(now)]);
  return exportSnapshot(contents, { now, lastSeen: (id) => state.liveness.lastSeen(id), beacons });
}

/** What changes without a snapshot, for every replication heartbeat frame. */
export async function liveFields(state: RegistryState): Promise<JsonObject> {
  const now = state.now();
  const lastSeen: JsonObject = {};
  for (const node of await state.store.listRegistered()) {
    const at = state.liveness.lastSeen(node);
    if (at !== undefined) lastSeen[String(node.id)] = formatTime(at);
  }
  const beacons = (await state.store.listBeacons(now)).map(
    (b): JsonObject => ({ id: b.id, addr: b.addr, ttl_ms: b.expiresAt - now }),
  );
  return { [EXT_LAST_SEEN]: lastSeen, [EXT_BEACONS]: beacons };
}

function primaryOf(state: RegistryState, token: string): Replication {
  const primary = new ReplicationPrimary({
    token,
    log: state.log,
    snapshot: () => liveSnapshot(state),
    heartbeatFields: () => liveFields(state),
  });
  return {
    subscribe: (conn, msg) => primary.subscribe(conn.socket, joinHostPort(conn.remoteIp, conn.remotePort), msg),
    changed: () => primary.changed(),
    close: () => primary.close(),
  };
}

/** Starts the primary or standby side, or neither (then subscriptions are refused). */
export function startReplication(state: RegistryState, checked: CheckedReplication): Replication {
  if (checked.primary !== undefined && checked.token !== undefined) {
    const standby = new ReplicationStandby({
      primary: checked.primary,
      token: checked.token,
      store: state.store,
      liveness: state.liveness,
      log: state.log,
      now: () => state.now(),
      connect: checked.connect,
    });
    state.log.info({ primary: `${checked.primary.host}:${checked.primary.port}` }, 'running as a read-only standby');
    return {
      subscribe: () => {
        throw new RequestError('read_only', 'a standby does not serve replication');
      },
      changed: () => {},
      close: () => standby.stop(),
    };
  }
  if (checked.token !== undefined) return primaryOf(state, checked.token);
  return {
    subscribe: () => {
      throw new RequestError(
        'forbidden',
        'replication is not enabled on this registry (no replication token configured)',
      );
    },
    changed: () => {},
    close: () => {},
  };
}
