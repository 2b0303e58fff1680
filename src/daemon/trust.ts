import { createHash } from 'node:crypto';
import type { Identity } from '../crypto/identity.js';
import { signChallenge, verifyChallenge } from '../crypto/registry-signing.js';
import { toBase64 } from '../crypto/base64.js';
import { PilotError } from '../errors.js';
import type { Logger } from '../log.js';
import {
  decodeHandshakeMessage,
  encodeHandshakeMessage,
  HANDSHAKE_MAX_SIZE,
  type HandshakeMessage,
  type HandshakeType,
} from '../protocol/handshake.js';
import type { JsonObject } from '../protocol/json.js';
import { challenge } from '../protocol/registry-frame.js';
import type { PilotConn, PilotNetwork } from '../pilot-net.js';
import type { PendingPeer, TrustedPeer, TrustStore } from './trust-store.js';
import type { RegistryKeys } from '../registry-keys.js';
import type { WebhookSink } from '../webhook-sink.js';

export const HANDSHAKE_PORT = 444;

/** The registry calls of the relay channel (PROTOCOL.md §6.2). */
export interface TrustRegistry {
  requestHandshake(peer: number, justification: string): Promise<JsonObject>;
  pollHandshakes(): Promise<JsonObject>;
  respondHandshake(peer: number, accept: boolean): Promise<JsonObject>;
  reportTrust(peer: number): Promise<JsonObject>;
  revokeTrust(peer: number): Promise<JsonObject>;
}

export interface TrustManagerOptions {
  store: TrustStore;
  identity: Identity;
  selfNode: () => number;
  net: PilotNetwork;
  registry: TrustRegistry;
  /** The Ed25519 keys the registry holds for nodes. */
  keys: RegistryKeys;
  /** A peer became trusted (the route to it may now resolve). */
  onTrusted: (node: number) => void;
  /** Tears down the tunnel and connections of a peer whose trust ended. */
  onRevoked: (node: number) => void;
  webhooks: WebhookSink;
  log: Logger;
  now?: () => number;
}

const MAX_AGE_MS = 5 * 60_000;
const MAX_SKEW_MS = 30_000;
/**
 * A handshake message is one segment sent right after the connection opens (PROTOCOL.md §6.1): a
 * connection that has not delivered it by then is dropped (the reference waits 10 s, which lets one
 * node hold the port's slots with connections that never speak).
 */
const READ_TIMEOUT_MS = 2_000;
/** After the message, how long the sender has to finish closing before the connection is reset. */
const CLOSE_LINGER_MS = 1_000;
const DIRECT_DIAL_TIMEOUT_MS = 3_000;
const SEEN_LIMIT = 10_000;
const MAX_SENT_RECORDS = 256;

/** A handshake request this node sent, and what became of it. */
export interface OutgoingRequest {
  readonly nodeId: number;
  readonly sentAt: number;
  readonly state: 'sent' | 'accepted' | 'rejected';
  readonly answeredAt?: number;
  /** The peer's reason, when it rejected directly (the registry relays none). */
  readonly reason?: string;
}

/**
 * Trust between agents (PROTOCOL.md §6): requests, approvals, rejections and revocations over port
 * 444 and the registry relay. Unlike the reference, a message on port 444 must come from the node it
 * names, and its signature is checked against the key the registry holds for that node.
 */
export class TrustManager {
  private readonly outgoing = new Set<number>();
  /** The requests this node sent and what became of them, newest last (bounded). */
  private readonly sent = new Map<number, OutgoingRequest>();
  private readonly seen = new Map<string, number>();
  private readonly now: () => number;

  constructor(private readonly o: TrustManagerOptions) {
    this.now = o.now ?? Date.now;
  }

  isTrusted(node: number): boolean {
    return node === this.o.selfNode() || this.o.store.isTrusted(node);
  }

  trusted(): TrustedPeer[] {
    return this.o.store.listTrusted();
  }

  pending(): PendingPeer[] {
    return this.o.store.listPending();
  }

  /** Whether a request of ours still awaits the peer's answer. */
  awaitingAnswer(): boolean {
    return this.outgoing.size > 0;
  }

  /** Serves port 444. Call once the stack exists. */
  async listen(): Promise<void> {
    const listener = await this.o.net.listen(HANDSHAKE_PORT);
    listener.on('connection', (conn) => void this.receive(conn));
  }

  // ---- user actions ----

  async request(peer: number, justification: string): Promise<JsonObject> {
    if (peer === this.o.selfNode()) throw new PilotError('invalid_argument', 'cannot send a handshake to yourself');
    if (this.o.store.isTrusted(peer)) return { node_id: peer, status: 'sent' };
    this.outgoing.add(peer);
    this.sent.delete(peer);
    this.sent.set(peer, { nodeId: peer, sentAt: this.now(), state: 'sent' });
    if (this.sent.size > MAX_SENT_RECORDS) this.sent.delete(this.sent.keys().next().value as number);
    // The relay reaches a private peer (direct dials to it are refused until trust exists) and the
    // registry pushes it to the peer at once; the direct message is a best-effort extra.
    let relayed = false;
    try {
      await this.o.registry.requestHandshake(peer, justification);
      relayed = true;
    } catch (err) {
      this.o.log.debug({ err, peer }, 'relay handshake request failed');
    }
    const direct = await this.sendDirect(peer, 'handshake_request', { justification });
    if (!relayed && !direct) {
      throw new PilotError(
        'connection_failed',
        `could not deliver the handshake to node ${peer}`,
        'check that the node id is right and that the registry is reachable',
      );
    }
    return { node_id: peer, status: 'sent' };
  }

  async approve(peer: number): Promise<JsonObject> {
    const pending = this.o.store.getPending(peer);
    if (!pending) {
      if (this.o.store.isTrusted(peer)) return { node_id: peer, status: 'approved' };
      throw new PilotError(
        'not_found',
        `no pending handshake from node ${peer}`,
        'list requests with: pilotctl pending',
      );
    }
    // The registry pair first: once we say "trusted", both sides expect to resolve each other.
    await this.registryQuietly('respond_handshake', () => this.o.registry.respondHandshake(peer, true));
    await this.registryQuietly('report_trust', () => this.o.registry.reportTrust(peer));
    await this.trustPeer({ nodeId: peer, publicKey: pending.publicKey, mutual: false });
    this.outgoing.delete(peer);
    this.o.webhooks.emit('handshake.approved', { peer_node_id: peer });
    void this.sendDirect(peer, 'handshake_accept', {});
    return { node_id: peer, status: 'approved' };
  }

  async reject(peer: number, reason: string): Promise<JsonObject> {
    await this.o.store.removePending(peer);
    this.o.webhooks.emit('handshake.rejected', { peer_node_id: peer, reason });
    await this.registryQuietly('respond_handshake', () => this.o.registry.respondHandshake(peer, false));
    void this.sendDirect(peer, 'handshake_reject', { reason });
    return { node_id: peer, status: 'rejected' };
  }

  async revoke(peer: number): Promise<JsonObject> {
    const pending = this.o.store.getPending(peer);
    if (!this.o.store.isTrusted(peer)) {
      if (pending) await this.o.store.removePending(peer);
      throw new PilotError('not_found', `node ${peer} was not trusted`);
    }
    // Tell the peer first, while the tunnel still stands.
    await this.sendDirect(peer, 'handshake_revoke', { reason: 'trust revoked' });
    await this.o.store.remove(peer);
    this.outgoing.delete(peer);
    this.o.webhooks.emit('trust.revoked', { peer_node_id: peer });
    this.o.onRevoked(peer);
    await this.registryQuietly('revoke_trust', () => this.o.registry.revokeTrust(peer));
    return { node_id: peer, status: 'revoked' };
  }

  /** After re-registration the registry may have lost our claims: report every trusted peer again. */
  async reportAll(): Promise<void> {
    for (const t of this.o.store.listTrusted())
      await this.registryQuietly('report_trust', () => this.o.registry.reportTrust(t.nodeId));
  }

  private async trustPeer(peer: { nodeId: number; publicKey: string; mutual: boolean }): Promise<void> {
    // Before the store: it shows the peer as trusted at once, while trust.json is still being
    // written, and a dial made in that moment must not meet a refusal cached before the trust.
    this.o.onTrusted(peer.nodeId);
    await this.o.store.trust({ ...peer, approvedAt: this.now(), network: 0 });
  }

  // ---- relay channel ----

  /** Fetches and applies whatever the registry holds for us (after a push notice or a heartbeat). */
  async poll(): Promise<void> {
    const reply = await this.o.registry.pollHandshakes();
    const requests = Array.isArray(reply.requests) ? reply.requests : [];
    const responses = Array.isArray(reply.responses) ? reply.responses : [];
    for (const r of requests) {
      if (r && typeof r === 'object' && !Array.isArray(r) && typeof r.from_node_id === 'number') {
        await this.onRequest(r.from_node_id, typeof r.justification === 'string' ? r.justification : '', '', 'relay');
      }
    }
    for (const r of responses) {
      if (r && typeof r === 'object' && !Array.isArray(r) && typeof r.from_node_id === 'number') {
        if (r.accept === true) await this.onAccept(r.from_node_id, '');
        else this.onRejected(r.from_node_id, '');
      }
    }
  }

  // ---- direct channel ----

  private async receive(conn: PilotConn): Promise<void> {
    conn.on('error', () => undefined);
    const bytes = await readMessage(conn).catch(() => undefined);
    if (!bytes) {
      conn.destroy();
      return;
    }
    conn.end();
    setTimeout(() => conn.destroy(), CLOSE_LINGER_MS).unref();
    const decoded = decodeHandshakeMessage(bytes);
    if (!decoded.ok) {
      this.o.log.debug({ from: conn.remoteAddr.node, error: decoded.error.message }, 'bad handshake message');
      return;
    }
    const msg = decoded.value;
    const from = conn.remoteAddr.node;
    const refusal = await this.check(msg, from, bytes);
    if (refusal) {
      this.o.log.info({ from, type: msg.type, refusal }, 'handshake message refused');
      return;
    }
    switch (msg.type) {
      case 'handshake_request':
        await this.onRequest(from, msg.justification, msg.publicKey, 'direct');
        return;
      case 'handshake_accept':
        await this.onAccept(from, msg.publicKey);
        return;
      case 'handshake_reject':
        this.onRejected(from, msg.reason);
        return;
      case 'handshake_revoke':
        await this.onRevokedByPeer(from);
        return;
    }
  }

  /** Why a message must be dropped, or undefined if it is genuine and fresh. */
  private async check(msg: HandshakeMessage, from: number, raw: Uint8Array): Promise<string | undefined> {
    if (msg.nodeId !== from) return `claims node ${msg.nodeId} but came from node ${from}`;
    const now = this.now();
    const sent = msg.timestamp * 1000;
    if (now - sent > MAX_AGE_MS || sent - now > MAX_SKEW_MS) return 'stale timestamp';
    const digest = createHash('sha256').update(raw).digest('hex');
    this.reapSeen(now);
    if (this.seen.has(digest)) return 'replayed';
    const found = await this.o.keys.get(from);
    if (found.status === 'unreachable') return 'registry unreachable, the sender key cannot be checked';
    if (found.status !== 'ok') return 'no registry key for the sender';
    const key = toBase64(found.key);
    if (msg.publicKey && msg.publicKey !== key) return 'key differs from the registry key';
    if (!verifyChallenge(key, challenge.requestHandshake(from, this.o.selfNode()), msg.signature))
      return 'bad signature';
    this.seen.set(digest, now);
    return undefined;
  }

  /** The registry's key for a node, base64; empty when there is none or it cannot be asked. */
  private async registryKey(node: number): Promise<string> {
    const found = await this.o.keys.get(node);
    return found.status === 'ok' ? toBase64(found.key) : '';
  }

  private reapSeen(now: number): void {
    if (this.seen.size < SEEN_LIMIT) return;
    for (const [k, t] of this.seen) if (now - t > 2 * MAX_AGE_MS) this.seen.delete(k);
    while (this.seen.size >= SEEN_LIMIT) {
      const oldest = this.seen.keys().next().value;
      if (oldest === undefined) break;
      this.seen.delete(oldest);
    }
  }

  private async onRequest(
    from: number,
    justification: string,
    publicKey: string,
    via: 'direct' | 'relay',
  ): Promise<void> {
    this.o.webhooks.emit('handshake.received', { justification, peer_node_id: from });
    if (this.o.store.isTrusted(from)) {
      await this.answerAccept(from, via);
      return;
    }
    if (this.outgoing.has(from)) {
      this.outgoing.delete(from);
      this.answered(from);
      // Answering the peer's pending request is what completes the registry pair; only then is the
      // peer reported as trusted here (a dial right after must resolve).
      await this.registryQuietly('report_trust', () => this.o.registry.reportTrust(from));
      await this.registryQuietly('respond_handshake', () => this.o.registry.respondHandshake(from, true));
      await this.trustPeer({ nodeId: from, publicKey: publicKey || (await this.registryKey(from)), mutual: true });
      this.o.webhooks.emit('handshake.auto_approved', { peer_node_id: from, reason: 'mutual' });
      if (via === 'direct') void this.sendDirect(from, 'handshake_accept', {});
      return;
    }
    if (this.o.store.getPending(from)) return;
    // A relayed request carries no key; the registry's is the one that counts anyway.
    const key = publicKey || (await this.registryKey(from));
    await this.o.store.addPending({ nodeId: from, publicKey: key, justification, receivedAt: this.now() });
    this.o.webhooks.emit('handshake.pending', { justification, peer_node_id: from });
  }

  /** Accepts count only for a request we sent (the reference trusts any unsolicited accept). */
  private async onAccept(from: number, publicKey: string): Promise<void> {
    if (this.o.store.isTrusted(from)) return;
    if (!this.outgoing.has(from)) {
      this.o.log.info({ from }, 'ignoring a handshake accept nobody asked for');
      return;
    }
    this.outgoing.delete(from);
    this.answered(from);
    const key = publicKey || (await this.registryKey(from));
    await this.registryQuietly('report_trust', () => this.o.registry.reportTrust(from));
    await this.trustPeer({ nodeId: from, publicKey: key, mutual: true });
    this.o.webhooks.emit('handshake.approved', { peer_node_id: from });
  }

  /** The peer said no (directly, with its reason, or through the registry): the requester learns it. */
  private onRejected(from: number, reason: string): void {
    this.outgoing.delete(from);
    const record = this.sent.get(from);
    if (record === undefined || record.state !== 'sent') return;
    this.sent.set(from, { ...record, state: 'rejected', answeredAt: this.now(), ...(reason !== '' ? { reason } : {}) });
    this.o.webhooks.emit('handshake.rejected_by_peer', { peer_node_id: from, ...(reason !== '' ? { reason } : {}) });
  }

  private answered(from: number): void {
    const record = this.sent.get(from);
    if (record !== undefined && record.state === 'sent')
      this.sent.set(from, { ...record, state: 'accepted', answeredAt: this.now() });
  }

  /** The requests this node sent, newest first, with their state. */
  outgoingRequests(): OutgoingRequest[] {
    return [...this.sent.values()].reverse();
  }

  private async onRevokedByPeer(from: number): Promise<void> {
    this.outgoing.delete(from);
    const was = await this.o.store.remove(from);
    if (!was) return;
    this.o.webhooks.emit('trust.revoked_by_peer', { peer_node_id: from });
    this.o.onRevoked(from);
    await this.registryQuietly('revoke_trust', () => this.o.registry.revokeTrust(from));
  }

  private async answerAccept(peer: number, via: 'direct' | 'relay'): Promise<void> {
    await this.registryQuietly('respond_handshake', () => this.o.registry.respondHandshake(peer, true));
    if (via === 'direct') void this.sendDirect(peer, 'handshake_accept', {});
  }

  private async sendDirect(
    peer: number,
    type: HandshakeType,
    extra: { justification?: string; reason?: string },
  ): Promise<boolean> {
    const msg = encodeHandshakeMessage({
      type,
      nodeId: this.o.selfNode(),
      publicKey: toBase64(this.o.identity.publicKey),
      justification: extra.justification ?? '',
      signature: signChallenge(this.o.identity, challenge.requestHandshake(this.o.selfNode(), peer)),
      reason: extra.reason ?? '',
      timestamp: Math.floor(this.now() / 1000),
    });
    try {
      const conn = await this.o.net.dial({ network: 0, node: peer }, HANDSHAKE_PORT, {
        timeoutMs: DIRECT_DIAL_TIMEOUT_MS,
      });
      conn.on('error', () => undefined);
      conn.end(msg);
      return true;
    } catch (err) {
      this.o.log.debug({ err, peer, type }, 'direct handshake delivery failed');
      return false;
    }
  }

  private async registryQuietly(what: string, call: () => Promise<JsonObject>): Promise<void> {
    try {
      await call();
    } catch (err) {
      this.o.log.warn({ err, what }, 'registry trust call failed');
    }
  }
}

/** Reads one message: everything the peer sends before closing, at most one segment's worth, within READ_TIMEOUT_MS. */
function readMessage(conn: PilotConn): Promise<Uint8Array | undefined> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    let size = 0;
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      conn.removeAllListeners('data');
      resolve(ok && size > 0 ? Buffer.concat(parts) : undefined);
    };
    const timer = setTimeout(() => done(size > 0), READ_TIMEOUT_MS);
    conn.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > HANDSHAKE_MAX_SIZE) return done(false);
      parts.push(chunk);
      // A reference sender keeps the connection open for 500 ms after its single write.
      if (isCompleteJson(parts)) done(true);
    });
    conn.once('end', () => done(true));
    conn.once('close', () => done(true));
  });
}

function isCompleteJson(parts: Buffer[]): boolean {
  try {
    JSON.parse(Buffer.concat(parts).toString('utf8'));
    return true;
  } catch {
    return false;
  }
}
