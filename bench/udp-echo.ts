/**
 * Baseline for bench:ping and bench:connect: a plain node:dgram echo in its own process. Run as a
 * child; it sends its port to the parent over IPC and echoes every datagram until killed.
 *
 * The echo runs with the flags of pilot's own servers (SERVER_NODE_FLAGS): without them V8's
 * memory reducer collects an idle process's heap and its optimised code with it, and the round
 * trip here was 10–20 % slower (0.34–0.38 against 0.30–0.34 ms, alternated), a baseline weaker
 * than the pilot processes it stands beside.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { SERVER_NODE_FLAGS } from '../src/config/node-flags.js';

if (process.argv[2] === '--udp-echo') {
  const socket = createSocket('udp4');
  socket.on('message', (msg, from) => socket.send(msg, from.port, from.address));
  socket.bind(0, '127.0.0.1', () => process.send?.(socket.address().port));
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A UDP echo in another process and this process's socket to it. */
export class UdpEcho {
  private closed = false;

  private constructor(
    private readonly child: ChildProcess,
    private readonly socket: Socket,
    private readonly port: number,
  ) {}

  static async start(): Promise<UdpEcho> {
    const child = fork(fileURLToPath(import.meta.url), ['--udp-echo'], {
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      execArgv: [...SERVER_NODE_FLAGS.filter((f) => !process.execArgv.includes(f)), ...process.execArgv],
    });
    const socket = createSocket('udp4');
    try {
      const port = await new Promise<number>((resolve, reject) => {
        child.once('message', (m) => resolve(Number(m)));
        child.once('exit', (code) => reject(new Error(`udp echo exited (${code})`)));
      });
      await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
      return new UdpEcho(child, socket, port);
    } catch (err) {
      socket.close();
      child.kill();
      throw err;
    }
  }

  /** One round trip of a 16-byte datagram; ms from the send to the echo. */
  roundTrip(seq: number): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('udp echo did not answer within 2 s')), 2000);
      const start = performance.now();
      this.socket.once('message', () => {
        clearTimeout(timer);
        resolve(performance.now() - start);
      });
      this.socket.send(Buffer.alloc(16, seq & 0xff), this.port, '127.0.0.1');
    });
  }

  /** `count` round trips back to back (as the pilot rows warm up before they are timed). */
  async warmUp(count: number): Promise<void> {
    for (let i = 0; i < count; i++) await this.roundTrip(i);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.close();
    this.child.kill();
  }
}

/**
 * `count` operations timed by `measure`, each followed by one UDP round trip, in turns `gapMs / 2`
 * apart: each system starts an operation every `gapMs` and finds its processes idle (waking an
 * idle process costs more than the packet), and both are measured through the same minutes of the
 * machine, so that a drift of the host (the round trip here moves ±15 % between runs) moves the
 * operation and its baseline together. Returns both series in ms.
 */
export async function alternateWithUdp(
  udp: UdpEcho,
  count: number,
  gapMs: number,
  measure: (i: number) => Promise<number>,
): Promise<{ times: number[]; udp: number[] }> {
  const times: number[] = [];
  const rtts: number[] = [];
  let next = performance.now();
  const turn = async (): Promise<void> => {
    await sleep(Math.max(0, next - performance.now()));
    next = performance.now() + gapMs / 2;
  };
  for (let i = 0; i < count; i++) {
    await turn();
    times.push(await measure(i));
    await turn();
    rtts.push(await udp.roundTrip(i));
  }
  return { times, udp: rtts };
}
