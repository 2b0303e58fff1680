import type { IpcHandshakeOp } from '../protocol/ipc.js';
import type { JsonObject } from '../protocol/json.js';
import type { HandshakePoller } from './handshake-poller.js';
import type { TrustManager } from './trust.js';

/** How long `pending` waits for a poll of the registry before listing what it has. */
const PENDING_REFRESH_MS = 3000;

const secs = (ms: number): number => Math.floor(ms / 1000);

/** One trust command (IPC Handshake, PROTOCOL.md §8.3) and its reply object. */
export async function trustOp(trust: TrustManager, poller: HandshakePoller, op: IpcHandshakeOp): Promise<JsonObject> {
  switch (op.sub) {
    case 'Request': {
      const reply = await trust.request(op.nodeId, op.justification);
      poller.requestSent();
      return reply;
    }
    case 'Approve':
      return trust.approve(op.nodeId);
    case 'Reject':
      return trust.reject(op.nodeId, op.reason);
    case 'Revoke':
      return trust.revoke(op.nodeId);
    case 'Pending':
      // Without push from the registry, fetch what it holds first (bounded: listing must stay quick).
      await poller.refresh(PENDING_REFRESH_MS);
      return {
        pending: trust.pending().map((p) => ({
          justification: p.justification,
          node_id: p.nodeId,
          public_key: p.publicKey,
          received_at: secs(p.receivedAt),
        })),
      };
    case 'Trusted':
      return {
        trusted: trust.trusted().map((t) => ({
          approved_at: secs(t.approvedAt),
          mutual: t.mutual,
          network: t.network,
          node_id: t.nodeId,
          public_key: t.publicKey,
        })),
      };
    case 'Outgoing':
      // Answers may be waiting at the registry (no push from a Go registry): fetch them first.
      await poller.refresh(PENDING_REFRESH_MS);
      return {
        outgoing: trust.outgoingRequests().map((r) => ({
          node_id: r.nodeId,
          sent_at: secs(r.sentAt),
          state: r.state,
          ...(r.answeredAt !== undefined ? { answered_at: secs(r.answeredAt) } : {}),
          ...(r.reason !== undefined ? { reason: r.reason } : {}),
        })),
      };
  }
}
