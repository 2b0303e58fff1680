import type { BeaconRecord, StoreContents } from './store.js';

/**
 * The reference's JSON store and replication snapshot (PROTOCOL.md §5.9, §5.10).
 *
 * Our store knows more than that format. What a Go reader must not miss is mapped onto its
 * fields (effective trust pairs, undelivered handshake requests, deregistered nodes' keys in
 * `pub_key_idx`); the rest travels under `pilot_*` keys, which Go's decoder ignores:
 *
 * - `pilot_deregistered` — `{"<id>": node}` for deregistered nodes, which keep their key, owner
 *   and polo score here (the reference keeps only the key → id index).
 * - `pilot_trust_claims` — `["<from>:<to>"]`, every directed claim. `trust_pairs` lists only pairs
 *   claimed both ways; a one-sided claim would be a full pair to a Go registry (§14 #3).
 * - `pilot_handshake_delivered` — like `handshake_inbox`: requests already returned by a poll that
 *   stay pending until answered (the reference drops them on poll).
 * - `pilot_task_evidence` — applied task receipts/expiries, so a promoted standby refuses a replay.
 * - `pilot_beacons` — `[{id, addr, ttl_ms}]`, replication only: what `beacon_list` serves.
 * - `pilot_signs_body` (in a node object) — the node has signed a request body, so the registry
 *   refuses its static signatures (registry/context.ts).
 *
 * Not in the format and not carried: the volatile "key proven recently" times (a restarted or
 * promoted registry starts them afresh) and the creation times of trust claims.
 */

export const EXT_DEREGISTERED = 'pilot_deregistered';
export const EXT_TRUST_CLAIMS = 'pilot_trust_claims';
export const EXT_HANDSHAKE_DELIVERED = 'pilot_handshake_delivered';
export const EXT_TASK_EVIDENCE = 'pilot_task_evidence';
/** `[{task_id, submitter_id, executor_id, seen}]`: acceptances awaiting their receipt. */
export const EXT_TASK_ACCEPTANCES = 'pilot_task_acceptances';
export const EXT_BEACONS = 'pilot_beacons';
export const EXT_SIGNS_BODY = 'pilot_signs_body';
/** In replication heartbeat frames: `{"<id>": RFC 3339}` of every registered node seen recently. */
export const EXT_LAST_SEEN = 'pilot_last_seen';

/** The reference never hands out network ids; a fresh registry's next one is 1. */
export const NEXT_NETWORK_ID = 1;

/** Bounds of what an import accepts (a replication frame is bounded by 1 MiB anyway). */
export const SNAPSHOT_LIMITS = {
  nodes: 1_000_000,
  networks: 65_536,
  trustEntries: 2_000_000,
  /** Targets with an inbox; each inbox holds at most HANDSHAKE_INBOX_MAX requests. */
  inboxes: 1_000_000,
  /** Responses read per target (the newest HANDSHAKE_INBOX_MAX are kept, as the store does). */
  responsesPerTarget: 10_000,
  taskEvidence: 2_000_000,
  taskAcceptances: 2_000_000,
  beacons: 1024,
  networksPerNode: 1024,
  owner: 1024,
  addr: 256,
  networkName: 63,
  networkToken: 1024,
  /** Polo score changes of one piece of evidence. */
  scoreDelta: 1_000_000_000,
} as const;

/** What a valid snapshot holds, ready for `RegistryStore.replaceState`. */
export interface ParsedSnapshot {
  readonly contents: StoreContents;
  /** `last_seen` of registered nodes that carry one (Unix ms). */
  readonly lastSeen: ReadonlyMap<number, number>;
  /** `pilot_beacons`, with expiry times on the reader's clock. */
  readonly beacons: readonly BeaconRecord[];
  /** Networks other than the backbone, which this registry does not have; left out. */
  readonly droppedNetworks: number;
}
