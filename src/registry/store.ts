/**
 * Durable registry state (PROTOCOL.md §5). The server talks only to `RegistryStore`, which the
 * embedded SQLite store (synchronous inside, `SyncRegistryStore`) and the PostgreSQL store shared
 * by several registry processes both serve. Every mutating method is one atomic change: once it
 * resolves, the change survives a crash of the process.
 *
 * Times are Unix milliseconds. Liveness (`last_seen`) is not part of the embedded store: it is
 * volatile by design and every node gets a fresh grace period when the server starts. A shared
 * store carries it (see `SharedRegistryState`), so that every process sees the same.
 */

export interface NodeRecord {
  readonly id: number;
  /** Standard base64 of the Ed25519 public key; unique across nodes. */
  readonly publicKey: string;
  /** '' when none. */
  readonly owner: string;
  /** `ip:port` the node's tunnel is reachable at. */
  readonly realAddr: string;
  readonly isPublic: boolean;
  /** '' when none; unique across nodes otherwise. */
  readonly hostname: string;
  readonly tags: readonly string[];
  readonly taskExec: boolean;
  readonly poloScore: number;
  /** False after `deregister`: the id and key stay reserved for the same key. */
  readonly registered: boolean;
  /** The node has signed a request body (protocol/registry-auth.ts): static signatures are refused from then on. */
  readonly signsBody: boolean;
  /** Shared stores only: the last heartbeat or registration any process recorded (see `SharedRegistryState`). */
  readonly lastSeen?: number;
  /** Shared stores only: the last request any process verified with the node's key. */
  readonly lastProven?: number;
}

export interface NewNode {
  readonly publicKey: string;
  readonly owner: string;
  readonly realAddr: string;
  readonly signsBody?: boolean;
}

export type NodePatch = Partial<Omit<NodeRecord, 'id' | 'lastSeen' | 'lastProven'>>;

export interface HandshakeRequest {
  readonly fromNodeId: number;
  readonly toNodeId: number;
  readonly justification: string;
  readonly createdAt: number;
}

export interface HandshakeResponse {
  readonly fromNodeId: number;
  readonly toNodeId: number;
  readonly accept: boolean;
  readonly createdAt: number;
}

export interface BeaconRecord {
  readonly id: number;
  readonly addr: string;
  readonly expiresAt: number;
}

/** Score changes backed by signed task evidence (task_receipt / task_expiry). */
export interface TaskEvidence {
  readonly taskId: string;
  readonly kind: 'receipt' | 'expiry';
  readonly submitter: number;
  readonly executor: number;
  readonly submitterDelta: number;
  readonly executorDelta: number;
  readonly at: number;
}

/** An executor's signed acceptance of a task, as the registry saw it (the time is the registry's). */
export interface TaskAcceptance {
  readonly taskId: string;
  readonly submitter: number;
  readonly executor: number;
  readonly seenAt: number;
}

/** Receipts already applied that bound the next reward (anti-farming, handlers-polo.ts). */
export interface ReceiptHistory {
  /** Receipts between the two nodes, in either role, applied since the cut-off. */
  readonly pairReceipts: number;
  /** Score the executor gained from receipts applied since the cut-off. */
  readonly executorGain: number;
}

export type AddRequestResult = 'added' | 'refreshed' | 'full';

/** The directed claim "from trusts to" (a pair is effective once both directions exist). */
export interface TrustClaim {
  readonly from: number;
  readonly to: number;
  readonly createdAt: number;
}

export interface PendingHandshakeRequest extends HandshakeRequest {
  /** Returned by a poll already; kept so that `respond_handshake` can tell it was real. */
  readonly delivered: boolean;
}

/**
 * Everything durable except beacons (which live 60 s): what a snapshot carries, what a standby or
 * an import replaces. Lists are in a stable order (ids ascending, responses oldest first).
 */
export interface StoreContents {
  /** The id the next new node gets (above every id in `nodes`). */
  readonly nextNodeId: number;
  /** Unix ms the backbone network was created (the store's first start, or imported). */
  readonly backboneCreatedAt: number;
  /** Every node, registered or not. */
  readonly nodes: readonly NodeRecord[];
  readonly trustClaims: readonly TrustClaim[];
  readonly handshakeRequests: readonly PendingHandshakeRequest[];
  readonly handshakeResponses: readonly HandshakeResponse[];
  readonly taskEvidence: readonly TaskEvidence[];
  readonly taskAcceptances: readonly TaskAcceptance[];
}

/** The store as an embedded database answers it: at once, in the calling thread. */
export interface SyncRegistryStore {
  getNode(id: number): NodeRecord | undefined;
  getNodeByKey(publicKey: string): NodeRecord | undefined;
  getNodeByOwner(owner: string): NodeRecord | undefined;
  getNodeByHostname(hostname: string): NodeRecord | undefined;
  /** Registered nodes, by id. */
  listRegistered(): NodeRecord[];
  /** Creates a node under the next id (never 0, never reused). */
  createNode(node: NewNode): NodeRecord;
  /** Applies the patch and returns the new record; throws if the node does not exist. */
  updateNode(id: number, patch: NodePatch): NodeRecord;

  /** Records the directed claim "from trusts to". */
  addTrustClaim(from: number, to: number, at: number): void;
  hasTrustClaim(from: number, to: number): boolean;
  /** Removes both directions; returns how many claims existed. */
  removeTrustPair(a: number, b: number): number;
  /** Effective pairs (each node claimed the other), once each as [lower id, higher id], ordered. */
  listTrustPairs(): [number, number][];

  /** One pending request per (from, to): a repeat refreshes it and makes it undelivered again. */
  addHandshakeRequest(request: HandshakeRequest, maxPerTarget: number): AddRequestResult;
  /** Removes and returns the pending request from → to, delivered or not. */
  takeHandshakeRequest(from: number, to: number): HandshakeRequest | undefined;
  /** Undelivered requests for the node, oldest first; marks them delivered (they stay pending). */
  deliverHandshakeRequests(to: number): HandshakeRequest[];
  /** Appends a response; the oldest ones are dropped beyond maxPerTarget. */
  addHandshakeResponse(response: HandshakeResponse, maxPerTarget: number): void;
  /** Removes and returns the node's responses, oldest first. */
  takeHandshakeResponses(to: number): HandshakeResponse[];
  /** Deletes requests and responses created before the cut-off; returns how many. */
  pruneHandshakes(createdBefore: number): number;

  /**
   * Applies both score changes and records the evidence in one transaction; false (and nothing
   * changed) when evidence for this task id and pair was applied before.
   */
  applyTaskEvidence(evidence: TaskEvidence): boolean;
  /**
   * Records an acceptance unless one for the task and pair exists (the first sighting counts);
   * 'full' when the executor already has `maxOpen` acceptances without a receipt.
   */
  recordTaskAcceptance(acceptance: TaskAcceptance, maxOpen: number): 'recorded' | 'known' | 'full';
  getTaskAcceptance(taskId: string, submitter: number, executor: number): TaskAcceptance | undefined;
  /** Drops acceptances seen before the cut-off; returns how many. */
  pruneTaskAcceptances(seenBefore: number): number;
  receiptHistory(submitter: number, executor: number, since: number): ReceiptHistory;

  /** A consistent copy of everything durable except beacons. */
  exportState(): StoreContents;
  /**
   * Replaces everything durable except beacons in one transaction: on any error (e.g. a duplicate
   * key or hostname) nothing changed.
   */
  replaceState(contents: StoreContents): void;

  upsertBeacon(beacon: BeaconRecord): void;
  listBeacons(now: number): BeaconRecord[];
  pruneBeacons(now: number): number;

  close(): void;
}

/** The same methods, answered asynchronously. */
type Asynchronous<T> = {
  [K in keyof T]: T[K] extends (...args: infer A) => infer R ? (...args: A) => Promise<R> : T[K];
};

/**
 * What a store shared by several registry processes adds: the state that an embedded store
 * leaves in the memory of its one process (replay high-water marks, liveness, handshake wake-ups).
 */
export interface SharedRegistryState {
  /**
   * Records `at` as the newest `signed_at` accepted from the key for this request type, unless
   * one at least as late is recorded: false then (a replay, whichever process saw the first).
   */
  advanceSignedAt(publicKey: string, type: string, at: number): Promise<boolean>;
  /** Drops high-water marks that the clock window alone now protects; returns how many. */
  pruneSignedAt(before: number): Promise<number>;
  /** Writes liveness times (node id → Unix ms); a time never moves backwards. */
  recordLiveness(seen: ReadonlyMap<number, number>, proven: ReadonlyMap<number, number>): Promise<void>;
  /** Wakes the node's handshake push channel on whichever process holds it. */
  announceHandshake(nodeId: number): Promise<void>;
  /** Called with the node id of every announcement, this process's own included. */
  onHandshake(listener: (nodeId: number) => void): void;
}

export interface RegistryStore extends Asynchronous<SyncRegistryStore> {
  /** An embedded store's synchronous reads (the dashboard and an in-process beacon use them). */
  readonly local?: SyncRegistryStore;
  /** Present when several registry processes share the store. */
  readonly shared?: SharedRegistryState;
}
