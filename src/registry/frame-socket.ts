import { connect, type Socket } from 'node:net';
import { PilotError } from '../errors.js';
import type { JsonObject } from '../protocol/json.js';
import { encodeRegistryFrame, RegistryFrameSplitter } from '../protocol/registry-frame.js';
import { splitHostPort } from './endpoint.js';

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** `host:port`, `[v6]:port` or `:port` (loopback). */
export function parseRegistryAddress(address: string): HostPort {
  const parsed = splitHostPort(address);
  if (parsed === undefined || parsed.port === 0) {
    throw new PilotError('invalid_argument', `invalid registry address "${address}"`, 'use host:port, e.g. 127.0.0.1:9000');
  }
  return { host: parsed.host === '' ? '127.0.0.1' : parsed.host, port: parsed.port };
}

/** A registry TCP connection delivering whole decoded frames. */
export class FrameSocket {
  onFrame: (msg: JsonObject) => void = () => {};
  /** Called once, when the connection ends for any reason. */
  onClose: (reason: PilotError) => void = () => {};
  #closed = false;
  readonly #splitter = new RegistryFrameSplitter();

  private constructor(private readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      for (const result of this.#splitter.push(chunk)) {
        if (!result.ok) {
          this.#end(new PilotError('protocol', `registry sent a malformed frame: ${result.error.message}`));
          return;
        }
        this.onFrame(result.value);
        if (this.#closed) return;
      }
    });
    socket.on('error', (err) => this.#end(new PilotError('connection_failed', `registry connection failed: ${err.message}`)));
    socket.on('close', () => this.#end(new PilotError('connection_failed', 'registry closed the connection')));
  }

  static connect(target: HostPort, timeoutMs: number): Promise<FrameSocket> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: target.host, port: target.port });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new PilotError('timeout', `connecting to the registry at ${target.host}:${target.port} timed out`));
      }, timeoutMs);
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(new PilotError('connection_failed', `cannot connect to the registry at ${target.host}:${target.port}: ${err.message}`));
      });
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(new FrameSocket(socket));
      });
    });
  }

  get alive(): boolean {
    return !this.#closed;
  }

  /** This side's IP: the interface the route to the registry goes through. */
  get localAddress(): string | undefined {
    return this.socket.localAddress;
  }

  send(msg: JsonObject): void {
    let frame: Uint8Array;
    try {
      frame = encodeRegistryFrame(msg);
    } catch (err) {
      throw new PilotError('too_large', err instanceof Error ? err.message : String(err));
    }
    this.socket.write(frame);
  }

  destroy(): void {
    this.#end(new PilotError('connection_failed', 'registry connection closed'));
  }

  #end(reason: PilotError): void {
    if (this.#closed) return;
    this.#closed = true;
    this.socket.destroy();
    this.onClose(reason);
  }
}
