import { connect, type Socket } from 'node:net';
import type { JsonObject } from '../../src/protocol/json.js';
import { encodeRegistryFrame, RegistryFrameSplitter } from '../../src/protocol/registry-frame.js';

/** A raw registry connection for sending exactly what a Go client (or an attacker) would. */
export class RawConn {
  readonly #splitter = new RegistryFrameSplitter();
  readonly #frames: JsonObject[] = [];
  readonly #waiters: ((msg: JsonObject | undefined) => void)[] = [];
  closed = false;

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      for (const r of this.#splitter.push(chunk)) {
        if (!r.ok) throw r.error;
        const waiter = this.#waiters.shift();
        if (waiter) waiter(r.value);
        else this.#frames.push(r.value);
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closed = true;
      for (const w of this.#waiters.splice(0)) w(undefined);
    });
  }

  /** `localAddress` (another 127.x address) makes the connection come from another source IP. */
  static open(port: number, localAddress?: string): Promise<RawConn> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port, ...(localAddress !== undefined ? { localAddress } : {}) }, () =>
        resolve(new RawConn(socket)),
      );
      socket.once('error', reject);
    });
  }

  write(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  send(msg: JsonObject): void {
    this.write(encodeRegistryFrame(msg));
  }

  /** Next frame, or undefined once the server closed the connection. */
  next(timeoutMs = 2000): Promise<JsonObject | undefined> {
    const queued = this.#frames.shift();
    if (queued) return Promise.resolve(queued);
    if (this.closed) return Promise.resolve(undefined);
    return new Promise((resolve, reject) => {
      const waiter = (msg: JsonObject | undefined): void => {
        clearTimeout(timer);
        resolve(msg);
      };
      // A waiter that timed out must not swallow the next frame.
      const timer = setTimeout(() => {
        this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
        reject(new Error('no frame within timeout'));
      }, timeoutMs);
      this.#waiters.push(waiter);
    });
  }

  async request(msg: JsonObject): Promise<JsonObject> {
    this.send(msg);
    const reply = await this.next();
    if (!reply) throw new Error('connection closed without a reply');
    return reply;
  }

  /** Resolves when the server has closed the connection. */
  waitClosed(timeoutMs = 2000): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('connection still open')), timeoutMs);
      this.socket.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Raw bytes of one reply frame as received (for checking Go map key order). */
export function rawReplyText(port: number, msg: JsonObject): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port }, () => socket.write(encodeRegistryFrame(msg)));
    let buf = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length >= 4 && buf.length >= 4 + buf.readUInt32BE(0)) {
        socket.destroy();
        resolve(buf.subarray(4, 4 + buf.readUInt32BE(0)).toString('utf8'));
      }
    });
    socket.on('error', reject);
  });
}

export const nowSeconds = (): number => Math.floor(Date.now() / 1000);

/** Sends raw bytes and returns whatever the server answers before closing. */
export function rawHttp(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(request));
    let out = '';
    socket.on('data', (d: Buffer) => (out += d.toString('latin1')));
    socket.on('close', () => resolve(out));
    socket.on('error', reject);
    socket.setTimeout(3000, () => socket.destroy());
  });
}
