/**
 * Session heartbeats (`FEATURE_SESSION_HEARTBEAT` in `register_ok.features`): once a
 * TCP (or TLS) connection has carried a verified signed-body request of node X, later `heartbeat`
 * requests for X on that same connection may leave out `signed_at` and `signature`. The proof of
 * the key binds the connection; a heartbeat only says "still here". A connection is bound to one
 * node at most, the first one that proved its key on it, and never rebound to another; the
 * binding also names the key, so that a rotated key counts only once proven on the connection.
 */

/** What one connection has proven so far (mutable: the server binds it once). */
export interface ConnectionSession {
  boundNode?: number;
  boundKey?: string;
}

/** Binds the connection to `nodeId` unless it is bound to another node (the node's current key is kept). */
export function bindSession(session: ConnectionSession | undefined, nodeId: number, publicKey: string): void {
  if (session === undefined || (session.boundNode !== undefined && session.boundNode !== nodeId)) return;
  session.boundNode = nodeId;
  session.boundKey = publicKey;
}

/** A request without any signature fields (a session heartbeat, or a Go daemon's unsigned register). */
export const isUnsigned = (msg: { readonly signature?: unknown; readonly signed_at?: unknown }): boolean =>
  msg.signature === undefined && msg.signed_at === undefined;
