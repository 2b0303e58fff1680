/**
 * Many streams to one peer through a receiver that buffers a bounded amount (the UDP socket a
 * peer's connections all arrive through): the sum of the senders' windows must not overflow it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { TransportEndpoint } from '../../src/transport/endpoint.js';
import { addEndpointNode } from '../../src/transport/sim/endpoint-node.js';
import { SimNetwork, type SimNode } from '../../src/transport/sim/network.js';
import { startTransfer } from '../../src/transport/sim/transfer.js';

const MiB = 1024 * 1024;
const PORT = 1000;
/** A receiving process that handles 200 MB/s, behind a socket buffer of 8 MiB, 1 ms away. */
const RECEIVER = { latencyMs: 0.5, bandwidthBytesPerSec: 200e6, queueLimitBytes: 8 * MiB };
const STREAMS = 10;
const BYTES = 4 * MiB;

function run(peerFlightBytes: number | undefined) {
  const net = new SimNetwork({ seed: 7 });
  const opts = peerFlightBytes === undefined ? {} : { peerFlightBytes };
  const a: SimNode<TransportEndpoint> = addEndpointNode(net, 1, opts);
  const b: SimNode<TransportEndpoint> = addEndpointNode(net, 2, opts);
  const { ab } = net.connect(a, b, RECEIVER, { latencyMs: 0.5 });
  // Large segments, as between two pilot-ts nodes on one host.
  a.endpoint.setPeerSegmentSize(2, 60 * 1024);
  b.endpoint.setPeerSegmentSize(1, 60 * 1024);
  const round = (seed: number) => {
    const transfers = Array.from({ length: STREAMS }, (_, i) =>
      startTransfer(net, { from: a, to: b, port: PORT, bytes: BYTES, seed: seed + i }),
    );
    const startedAt = net.now;
    const dropsBefore = ab.stats.queueDrops;
    net.runUntil(() => transfers.every((t) => t.done), 120_000);
    const results = transfers.map((t) => t.result());
    const timeouts = results.reduce((n, r) => n + (r.dialer.stats?.timeouts ?? 0), 0);
    const lastByteAt = Math.max(...results.map((r) => r.dialAt + (r.durationMs ?? Number.POSITIVE_INFINITY)));
    return { results, timeouts, drops: ab.stats.queueDrops - dropsBefore, ms: lastByteAt - startedAt };
  };
  // The second round finds the budget the first one returned.
  return [round(100), round(200)];
}

test('streams to one peer stay within what its socket buffers: no drops, no retransmission timeouts', () => {
  for (const [round, r] of run(undefined).entries()) {
    for (const [i, t] of r.results.entries()) assert.ok(t.finished && t.ok, `round ${round} stream ${i} delivered`);
    assert.equal(r.drops, 0, `round ${round}: datagrams dropped at the full receive buffer`);
    assert.equal(r.timeouts, 0, `round ${round}: retransmission timeouts`);
    // 40 MiB at 200 MB/s is 210 ms; a retransmission timeout alone costs 200 ms.
    assert.ok(r.ms < 400, `round ${round}: all streams done after ${r.ms.toFixed(0)} ms`);
  }
});

test('without the per-peer limit the same streams overflow the receive buffer', () => {
  const [r] = run(0);
  assert.ok(r !== undefined);
  for (const [i, t] of r.results.entries()) assert.ok(t.finished && t.ok, `stream ${i} delivered`);
  assert.ok(r.drops > 0, 'the windows alone keep the receive buffer from overflowing');
});
