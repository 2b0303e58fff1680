import type { Logger } from '../log.js';
import type { WebhookEvent } from '../webhook-sink.js';

/**
 * The daemon's events in its log, whether or not a webhook is set: trust and path changes, the
 * node's registration and security events at info; connections, tunnels and data at debug.
 */
export function logEvent(log: Logger, event: WebhookEvent, data: Record<string, unknown> = {}): void {
  const important =
    event.startsWith('handshake.') ||
    event.startsWith('trust.') ||
    event.startsWith('node.') ||
    event.startsWith('security.') ||
    event === 'tunnel.relay_activated' ||
    event === 'tunnel.direct_upgraded';
  if (important) log.info({ event, ...data }, event);
  else if (log.isLevelEnabled('debug')) log.debug({ event, ...data }, event);
}
