/** Event names the daemon posts (PROTOCOL.md §12). */
export const WEBHOOK_EVENTS = [
  'node.registered',
  'node.reregistered',
  'node.deregistered',
  'conn.syn_received',
  'conn.established',
  'conn.fin',
  'conn.rst',
  'conn.idle_timeout',
  'tunnel.peer_added',
  'tunnel.established',
  'tunnel.relay_activated',
  'tunnel.direct_upgraded',
  'handshake.received',
  'handshake.pending',
  'handshake.approved',
  'handshake.rejected',
  'handshake.rejected_by_peer',
  'handshake.auto_approved',
  'trust.revoked',
  'trust.revoked_by_peer',
  'message.received',
  'file.received',
  'data.datagram',
  'pubsub.subscribed',
  'pubsub.unsubscribed',
  'pubsub.published',
  'security.syn_rate_limited',
  'security.nonce_replay',
] as const;

export type WebhookEvent = (typeof WEBHOOK_EVENTS)[number];

/** Where daemon components report events (the webhook dispatcher; a no-op when none is set). */
export interface WebhookSink {
  emit(event: WebhookEvent, data?: Record<string, unknown>): void;
}

export const noWebhooks: WebhookSink = { emit: () => undefined };
