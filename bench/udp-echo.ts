/**
 * Baseline for bench:ping: a plain node:dgram echo in its own process. Run as a child; it sends
 * its port to the parent over IPC and echoes every datagram until killed.
 */
import { createSocket } from 'node:dgram';
import { fork } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

if (process.argv[2] === '--child') {
  const socket = createSocket('udp4');
  socket.on('message', (msg, from) => socket.send(msg, from.port, from.address));
  socket.bind(0, '127.0.0.1', () => process.send?.(socket.address().port));
}

/**
 * Round trips of a 16-byte datagram to a UDP echo in another process, one every `gapMs` (idle
 * gaps matter: waking an idle process costs more than the packet), after `warmup` back to back
 * (as the pilot rows warm up). Returns the RTTs in ms.
 */
export async function udpRoundTrips(count: number, gapMs: number, warmup = 0): Promise<number[]> {
  const child = fork(fileURLToPath(import.meta.url), ['--child'], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  const socket = createSocket('udp4');
  try {
    const port = await new Promise<number>((resolve, reject) => {
      child.once('message', (m) => resolve(Number(m)));
      child.once('exit', (code) => reject(new Error(`udp echo exited (${code})`)));
    });
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    const rtts: number[] = [];
    for (let i = 0; i < warmup + count; i++) {
      if (i >= warmup) await new Promise((r) => setTimeout(r, gapMs));
      const start = performance.now();
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('udp echo did not answer within 2 s')), 2000);
        socket.once('message', () => {
          clearTimeout(timer);
          resolve();
        });
        socket.send(Buffer.alloc(16, i & 0xff), port, '127.0.0.1');
      });
      if (i >= warmup) rtts.push(performance.now() - start);
    }
    return rtts;
  } finally {
    socket.close();
    child.kill();
  }
}
