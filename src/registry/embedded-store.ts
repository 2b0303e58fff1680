import { SqliteRegistryStore } from './sqlite-store.js';
import type { RegistryStore, SyncRegistryStore } from './store.js';

/**
 * An embedded store behind the asynchronous interface. Each call runs to completion at once, so
 * a handler's steps are not interleaved with another request's unless it waits on something else.
 */
export function embeddedStore(local: SyncRegistryStore): RegistryStore {
  const run = <T>(f: () => T): Promise<T> => {
    try {
      return Promise.resolve(f());
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  };
  return {
    local,
    getNode: (id) => run(() => local.getNode(id)),
    getNodeByKey: (key) => run(() => local.getNodeByKey(key)),
    getNodeByOwner: (owner) => run(() => local.getNodeByOwner(owner)),
    getNodeByHostname: (hostname) => run(() => local.getNodeByHostname(hostname)),
    listRegistered: () => run(() => local.listRegistered()),
    createNode: (node) => run(() => local.createNode(node)),
    updateNode: (id, patch) => run(() => local.updateNode(id, patch)),
    addTrustClaim: (from, to, at) => run(() => local.addTrustClaim(from, to, at)),
    hasTrustClaim: (from, to) => run(() => local.hasTrustClaim(from, to)),
    removeTrustPair: (a, b) => run(() => local.removeTrustPair(a, b)),
    listTrustPairs: () => run(() => local.listTrustPairs()),
    addHandshakeRequest: (request, max) => run(() => local.addHandshakeRequest(request, max)),
    takeHandshakeRequest: (from, to) => run(() => local.takeHandshakeRequest(from, to)),
    deliverHandshakeRequests: (to) => run(() => local.deliverHandshakeRequests(to)),
    addHandshakeResponse: (response, max) => run(() => local.addHandshakeResponse(response, max)),
    takeHandshakeResponses: (to) => run(() => local.takeHandshakeResponses(to)),
    pruneHandshakes: (before) => run(() => local.pruneHandshakes(before)),
    applyTaskEvidence: (evidence) => run(() => local.applyTaskEvidence(evidence)),
    recordTaskAcceptance: (acceptance, max) => run(() => local.recordTaskAcceptance(acceptance, max)),
    getTaskAcceptance: (taskId, s, e) => run(() => local.getTaskAcceptance(taskId, s, e)),
    pruneTaskAcceptances: (before) => run(() => local.pruneTaskAcceptances(before)),
    receiptHistory: (s, e, since) => run(() => local.receiptHistory(s, e, since)),
    exportState: () => run(() => local.exportState()),
    replaceState: (contents) => run(() => local.replaceState(contents)),
    upsertBeacon: (beacon) => run(() => local.upsertBeacon(beacon)),
    listBeacons: (now) => run(() => local.listBeacons(now)),
    pruneBeacons: (now) => run(() => local.pruneBeacons(now)),
    close: () => run(() => local.close()),
  };
}

/** The default store: a SQLite file (or `':memory:'`). */
export function openRegistryStore(path: string): RegistryStore {
  return embeddedStore(new SqliteRegistryStore(path));
}
