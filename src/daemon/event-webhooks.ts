import type { Tunnel } from '../tunnel/tunnel.js';
import type { WebhookSink } from '../webhook-sink.js';
import type { NetStack } from './net-stack.js';

/**
 * Maps connection notices and datagrams of the stack and path events of the tunnel to the webhook events of
 * PROTOCOL.md §12 (trust, registration and service events are emitted where they happen).
 */
export function forwardToWebhooks(stack: NetStack, tunnel: Tunnel, webhooks: WebhookSink): void {
  stack.onNotice((n) => {
    const remote = `${n.remote.addr.network}:${n.remote.addr.node}`;
    if (n.kind === 'accepted') {
      webhooks.emit('conn.syn_received', {
        conn_id: n.connId,
        dst_port: n.localPort,
        src_addr: remote,
        src_port: n.remote.port,
      });
      webhooks.emit('conn.established', {
        conn_id: n.connId,
        dst_port: n.localPort,
        src_addr: remote,
        src_port: n.remote.port,
      });
    } else {
      const data = { conn_id: n.connId, local_port: n.localPort, remote_addr: remote, remote_port: n.remote.port };
      if (n.reason === 'reset') webhooks.emit('conn.rst', data);
      else if (n.reason === 'idle_timeout') webhooks.emit('conn.idle_timeout', data);
      else webhooks.emit('conn.fin', data);
    }
  });
  stack.onDatagram((d) =>
    webhooks.emit('data.datagram', {
      dst_port: d.dstPort,
      size: d.data.length,
      src_addr: `${d.srcAddr.network}:${d.srcAddr.node}`,
      src_port: d.srcPort,
    }),
  );
  tunnel.on('established', (e) =>
    webhooks.emit('tunnel.established', {
      authenticated: e.authenticated,
      peer_node_id: e.peerNodeId,
      rekeyed: e.rekeyed,
      relay: e.relay,
    }),
  );
  tunnel.on('peer-added', (e) =>
    webhooks.emit('tunnel.peer_added', { endpoint: e.endpoint, peer_node_id: e.peerNodeId }),
  );
  tunnel.on('relay-activated', (e) => webhooks.emit('tunnel.relay_activated', { peer_node_id: e.peerNodeId }));
  tunnel.on('direct-upgraded', (e) =>
    webhooks.emit('tunnel.direct_upgraded', { endpoint: e.endpoint, peer_node_id: e.peerNodeId }),
  );
  tunnel.on('nonce-replay', (e) =>
    webhooks.emit('security.nonce_replay', { counter: Number(e.counter), peer_node_id: e.peerNodeId }),
  );
}
