import { connect, type Socket } from 'node:net';

/**
 * A minimal NATS client over node:net speaking the text protocol (CONNECT, SUB, PUB, MSG,
 * PING/PONG), enough to run the same pub/sub workload against a nats-server for comparison.
 */
export class NatsClient {
  private buf: Buffer = Buffer.alloc(0);
  private readonly handlers = new Map<number, (data: Buffer) => void>();
  private nextSid = 1;
  private pongWaiters: (() => void)[] = [];

  private constructor(private readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
  }

  static async connect(port: number, host = '127.0.0.1'): Promise<NatsClient> {
    const socket = connect({ port, host });
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const client = new NatsClient(socket);
    socket.write('CONNECT {"verbose":false,"pedantic":false,"name":"pilot-bench"}\r\n');
    await client.flush();
    return client;
  }

  subscribe(subject: string, onMessage: (data: Buffer) => void): void {
    const sid = this.nextSid++;
    this.handlers.set(sid, onMessage);
    this.socket.write(`SUB ${subject} ${sid}\r\n`);
  }

  /** False when the socket buffer is full (wait for `drained`). */
  publish(subject: string, data: Buffer): boolean {
    return this.socket.write(
      Buffer.concat([Buffer.from(`PUB ${subject} ${data.length}\r\n`), data, Buffer.from('\r\n')]),
    );
  }

  drained(): Promise<void> {
    return new Promise((resolve) => this.socket.once('drain', resolve));
  }

  /** Round trip: resolves when the server has processed everything sent before. */
  flush(): Promise<void> {
    return new Promise((resolve) => {
      this.pongWaiters.push(resolve);
      this.socket.write('PING\r\n');
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    let pos = 0;
    for (;;) {
      const eol = this.buf.indexOf('\r\n', pos);
      if (eol < 0) break;
      const line = this.buf.toString('latin1', pos, eol);
      if (line.startsWith('MSG ')) {
        const parts = line.split(' ');
        const size = Number(parts[parts.length - 1]);
        const sid = Number(parts[2]);
        if (this.buf.length < eol + 2 + size + 2) break;
        const data = this.buf.subarray(eol + 2, eol + 2 + size);
        pos = eol + 2 + size + 2;
        this.handlers.get(sid)?.(data);
        continue;
      }
      pos = eol + 2;
      if (line === 'PING') this.socket.write('PONG\r\n');
      else if (line === 'PONG') this.pongWaiters.shift()?.();
      else if (line.startsWith('-ERR')) throw new Error(`nats: ${line}`);
    }
    this.buf = pos >= this.buf.length ? Buffer.alloc(0) : this.buf.subarray(pos);
  }
}
