import { createSocket, type Socket } from 'node:dgram';

/** A raw UDP client on 127.0.0.1 that records every datagram it receives. */
export class UdpClient {
  private readonly inbox: Buffer[] = [];
  private waiter: (() => void) | undefined;

  private constructor(private readonly socket: Socket) {
    socket.on('message', (msg) => {
      this.inbox.push(msg);
      this.waiter?.();
    });
  }

  static async open(): Promise<UdpClient> {
    const socket = createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()));
    return new UdpClient(socket);
  }

  get port(): number {
    return this.socket.address().port;
  }

  send(port: number, bytes: Uint8Array | string): Promise<void> {
    const data = typeof bytes === 'string' ? Buffer.from(bytes.replace(/\s+/g, ''), 'hex') : bytes;
    return new Promise((resolve, reject) =>
      this.socket.send(data, port, '127.0.0.1', (err) => (err ? reject(err) : resolve())),
    );
  }

  /** The next datagram, or a rejection after `timeoutMs`. */
  async next(timeoutMs = 1000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.inbox.length === 0) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no datagram within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.waiter = undefined;
    }
    return this.inbox.shift() as Buffer;
  }

  /** Waits `ms` and returns everything that arrived meanwhile (and before). */
  async drain(ms: number): Promise<Buffer[]> {
    await new Promise((resolve) => setTimeout(resolve, ms));
    return this.inbox.splice(0);
  }

  close(): void {
    this.socket.close();
  }
}

export const u32 = (n: number): string => n.toString(16).padStart(8, '0');
export const u16 = (n: number): string => n.toString(16).padStart(4, '0');
/** Wire form of 127.0.0.1:port inside DiscoverReply / PunchCommand. */
export const loopbackEp = (port: number): string => `047f000001${u16(port)}`;
