/**
 * The measurements bench:ping and bench:echo make through a node, written against PilotNode so they
 * run the same through a daemon (Driver) and through an embedded node.
 */
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import type { PilotNode } from '../src/pilot-node.js';
import { BenchError } from './lib.js';

export const PING_TIMEOUT_MS = 5000;

/**
 * Streams opened back to back before a latency phase (BENCH_WARMUP_CONNS, default 3000). V8
 * optimises a function once it has run enough: at one connection per 110 ms, the connection path
 * would still run in V8's interpreter and baseline tiers through the whole measurement, where a
 * long-running daemon has opened thousands of streams. With 10 warm-up pings the embedded median
 * was twice what it is after 3000; 6000 gave no more. A node admits 100 new streams a second from
 * one peer, so the warm-up takes about 30 s.
 */
export const WARMUP_CONNS = Math.max(0, Number.parseInt(process.env.BENCH_WARMUP_CONNS ?? '3000', 10) || 0);
const CHUNK = 60 * 1024;

/**
 * One ping as `pilotctl ping` makes it: a new stream to the echo port 7 carrying "ping-<seq>",
 * timed from the dial to the last echoed byte. Its watchdog (PING_TIMEOUT_MS × 2 for the whole
 * ping) is set before the dial, as the UDP baseline sets its own before its datagram, and is a
 * plain timer: a promise race around the ping would add its own work after the SYN, where it
 * delays the answering process (both often share a CPU), to this row and not to the baseline.
 */
export async function pingOnce(node: PilotNode, address: string, seq: number): Promise<number> {
  const payload = Buffer.from(`ping-${seq}`);
  let conn: Duplex | undefined;
  let expired = false;
  const start = performance.now();
  const watchdog = setTimeout(() => {
    expired = true;
    conn?.destroy(new BenchError(`ping ${seq} timed out after ${PING_TIMEOUT_MS * 2} ms`));
  }, PING_TIMEOUT_MS * 2);
  try {
    conn = await node.dial(address, 7, { timeoutMs: PING_TIMEOUT_MS, data: payload });
    const stream = conn;
    if (expired) throw new BenchError(`ping ${seq} timed out after ${PING_TIMEOUT_MS * 2} ms`);
    await new Promise<void>((resolve, reject) => {
      let got = 0;
      stream.on('data', (b: Buffer) => {
        got += b.length;
        if (got >= payload.length) resolve();
      });
      stream.once('error', reject);
      // After the echo the close of the stream's own destroy follows: no error to make then.
      stream.once(
        'close',
        () => got < payload.length && reject(new BenchError(`ping ${seq}: stream closed after ${got} bytes`)),
      );
    });
    return performance.now() - start;
  } finally {
    clearTimeout(watchdog);
    conn?.destroy();
  }
}

/**
 * As `pilotctl bench`: `total` bytes (i mod 256) written in 60 KiB chunks to the echo port,
 * waiting for drain, timed until the whole echo is back. Returns milliseconds.
 */
export async function echoOnce(node: PilotNode, address: string, total: number): Promise<number> {
  const chunk = Buffer.alloc(CHUNK);
  for (let i = 0; i < CHUNK; i++) chunk[i] = i & 0xff;
  const start = performance.now();
  const conn = await node.dial(address, 7, { timeoutMs: 10_000 });
  try {
    const echoed = new Promise<void>((resolve, reject) => {
      let received = 0;
      conn.on('data', (b: Buffer) => {
        received += b.length;
        if (received >= total) resolve();
      });
      conn.once('error', reject);
      conn.once('close', () =>
        received >= total ? resolve() : reject(new BenchError(`echo closed after ${received} of ${total} bytes`)),
      );
    });
    let sent = 0;
    while (sent < total) {
      const piece = total - sent >= CHUNK ? chunk : chunk.subarray(0, total - sent);
      sent += piece.length;
      if (!conn.write(piece)) await new Promise<void>((r) => conn.once('drain', r));
    }
    await echoed;
    return performance.now() - start;
  } finally {
    conn.destroy();
  }
}
