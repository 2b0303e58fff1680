import { formatSocketAddr } from '../../protocol/address.js';
import type { PilotConn } from '../../pilot-net.js';
import type { RunningService, ServiceContext } from '../types.js';
import { Broker, type BrokerOptions } from './broker.js';
import type { QueueLimits } from './queue.js';

export const EVENT_STREAM_PORT = 1002;

export interface EventStreamOptions {
  readonly port?: number;
  readonly limits?: QueueLimits;
  readonly maxTopicsPerConn?: number;
}

/**
 * Port 1002: the daemon's pub/sub broker (PROTOCOL.md §9.4), an app on a port like any other.
 * Webhooks: `pubsub.subscribed {remote, topic}` per subscription, `pubsub.unsubscribed` for each
 * when the connection ends, `pubsub.published {from, size, topic}` per relayed event.
 */
export async function createEventStream(
  ctx: ServiceContext,
  options: EventStreamOptions = {},
): Promise<RunningService> {
  const log = ctx.log.child({ service: 'eventstream' });
  const brokerOptions: BrokerOptions = {
    ...(options.limits ? { limits: options.limits } : {}),
    ...(options.maxTopicsPerConn !== undefined ? { maxTopicsPerConn: options.maxTopicsPerConn } : {}),
    onSubscribed: (remote, topic) => ctx.webhooks.emit('pubsub.subscribed', { remote, topic }),
    onUnsubscribed: (remote, topic) => ctx.webhooks.emit('pubsub.unsubscribed', { remote, topic }),
    onPublished: (from, topic, size) => ctx.webhooks.emit('pubsub.published', { from, size, topic }),
    onRefused: (remote, reason) => log.info({ remote, reason }, 'event stream connection refused'),
  };
  const broker = new Broker(brokerOptions);
  const listener = await ctx.net.listen(options.port ?? EVENT_STREAM_PORT);
  listener.on('connection', (conn: PilotConn) => {
    // The broker writes each connection's queued events in one batch per event-loop turn, so
    // holding small segments back for ACKs would only add latency.
    conn.setNoDelay?.(true);
    broker.accept(conn, formatSocketAddr({ addr: conn.remoteAddr, port: conn.remotePort }));
  });
  return {
    name: 'eventstream',
    stats: () => broker.stats(),
    async close() {
      await listener.close().catch(() => undefined);
      broker.closeAll();
    },
  };
}

export function startEventStream(ctx: ServiceContext): Promise<RunningService> {
  return createEventStream(ctx);
}
