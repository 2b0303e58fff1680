import type { SqliteGroupCommit } from './sqlite-group-commit.js';
import { SqliteRegistryStore } from './sqlite-store.js';
import type { RegistryStore, SyncRegistryStore } from './store.js';

/**
 * An embedded store behind the asynchronous interface. Each call runs to completion at once, so
 * a handler's steps are not interleaved with another request's unless it waits on something else.
 * With group commit, a write resolves once the batch holding it is committed.
 */
export function embeddedStore(local: SyncRegistryStore, commits?: SqliteGroupCommit): RegistryStore {
  const run = <T>(f: () => T): Promise<T> => {
    try {
      return Promise.resolve(f());
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  };
  const write =
    commits === undefined
      ? run
      : async <T>(f: () => T): Promise<T> => {
          commits.begin();
          const value = f();
          await commits.durable();
          return value;
        };
  return {
    local,
    getNode: (id) => run(() => local.getNode(id)),
    getNodeByKey: (key) => run(() => local.getNodeByKey(key)),
    getNodeByOwner: (owner) => run(() => local.getNodeByOwner(owner)),
    getNodeByHostname: (hostname) => run(() => local.getNodeByHostname(hostname)),
    listRegistered: () => run(() => local.listRegistered()),
    createNode: (node) => write(() => local.createNode(node)),
    updateNode: (id, patch) => write(() => local.updateNode(id, patch)),
    addTrustClaim: (from, to, at) => write(() => local.addTrustClaim(from, to, at)),
    hasTrustClaim: (from, to) => run(() => local.hasTrustClaim(from, to)),
    removeTrustPair: (a, b) => write(() => local.removeTrustPair(a, b)),
    listTrustPairs: () => run(() => local.listTrustPairs()),
    addHandshakeRequest: (request, max) => write(() => local.addHandshakeRequest(request, max)),
    takeHandshakeRequest: (from, to) => write(() => local.takeHandshakeRequest(from, to)),
    deliverHandshakeRequests: (to) => write(() => local.deliverHandshakeRequests(to)),
    addHandshakeResponse: (response, max) => write(() => local.addHandshakeResponse(response, max)),
    takeHandshakeResponses: (to) => write(() => local.takeHandshakeResponses(to)),
    pruneHandshakes: (before) => write(() => local.pruneHandshakes(before)),
    applyTaskEvidence: (evidence) => write(() => local.applyTaskEvidence(evidence)),
    recordTaskAcceptance: (acceptance, max) => write(() => local.recordTaskAcceptance(acceptance, max)),
    getTaskAcceptance: (taskId, s, e) => run(() => local.getTaskAcceptance(taskId, s, e)),
    pruneTaskAcceptances: (before) => write(() => local.pruneTaskAcceptances(before)),
    receiptHistory: (s, e, since) => run(() => local.receiptHistory(s, e, since)),
    exportState: () => run(() => local.exportState()),
    replaceState: (contents) => write(() => local.replaceState(contents)),
    upsertBeacon: (beacon) => write(() => local.upsertBeacon(beacon)),
    listBeacons: (now) => run(() => local.listBeacons(now)),
    pruneBeacons: (now) => write(() => local.pruneBeacons(now)),
    close: () => run(() => local.close()),
  };
}

/** The default store: a SQLite file (or `':memory:'`). */
export function openRegistryStore(path: string): RegistryStore {
  const sqlite = new SqliteRegistryStore(path);
  return embeddedStore(sqlite, sqlite.groupCommit);
}
