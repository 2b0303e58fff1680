import { connect, isIP, type Socket } from 'node:net';
import { connect as connectTls, type TLSSocket } from 'node:tls';
import { PilotError } from '../errors.js';
import type { JsonObject } from '../protocol/json.js';
import { encodeRegistryFrame, RegistryFrameSplitter } from '../protocol/registry-frame.js';
import { splitHostPort } from '../protocol/host-port.js';
import { certificateFingerprint, matchesPin } from './tls-pin.js';

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** TLS to the registry, accepted only with this leaf certificate (normalised fingerprint). */
export interface RegistryPin {
  readonly fingerprint: string;
}

/** `host:port`, `[v6]:port` or `:port` (loopback). */
export function parseRegistryAddress(address: string): HostPort {
  const parsed = splitHostPort(address);
  if (parsed === undefined || parsed.port === 0) {
    throw new PilotError(
      'invalid_argument',
      `invalid registry address "${address}"`,
      'use host:port, e.g. 127.0.0.1:9000',
    );
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
    socket.on('error', (err) =>
      this.#end(new PilotError('connection_failed', `registry connection failed: ${err.message}`)),
    );
    socket.on('close', () => this.#end(new PilotError('connection_failed', 'registry closed the connection')));
  }

  /** Plain TCP, or TLS verified against `pin` before the socket is handed out. */
  static connect(target: HostPort, timeoutMs: number, pin?: RegistryPin): Promise<FrameSocket> {
    const where = `${target.host}:${target.port}`;
    return new Promise((resolve, reject) => {
      const socket =
        pin === undefined
          ? connect({ host: target.host, port: target.port })
          : connectTls({
              host: target.host,
              port: target.port,
              // Self-signed registry certificates: the pin replaces CA and hostname checks.
              rejectUnauthorized: false,
              minVersion: 'TLSv1.2',
              ...(isIP(target.host) === 0 ? { servername: target.host } : {}),
            });
      let settled = false;
      const fail = (err: PilotError): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.destroy();
        reject(err);
      };
      const timer = setTimeout(
        () => fail(new PilotError('timeout', `connecting to the registry at ${where} timed out`)),
        timeoutMs,
      );
      socket.once('error', (err: NodeJS.ErrnoException) => fail(dialError(err, where, pin !== undefined)));
      socket.once(pin === undefined ? 'connect' : 'secureConnect', () => {
        const mismatch = pin === undefined ? undefined : pinMismatch(socket as TLSSocket, pin, where);
        if (mismatch !== undefined) {
          fail(mismatch);
          return;
        }
        settled = true;
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

function dialError(err: NodeJS.ErrnoException, where: string, tls: boolean): PilotError {
  // A TLS protocol failure (e.g. a plaintext registry) will not go away by dialling again.
  if (tls && typeof err.code === 'string' && /^ERR_(SSL|TLS)_/.test(err.code)) {
    return new PilotError(
      'protocol',
      `TLS handshake with the registry at ${where} failed: ${err.message}`,
      'is the registry running with -tls?',
    );
  }
  return new PilotError('connection_failed', `cannot connect to the registry at ${where}: ${err.message}`);
}

function pinMismatch(socket: TLSSocket, pin: RegistryPin, where: string): PilotError | undefined {
  const der = socket.getPeerCertificate().raw as Buffer | undefined;
  if (der !== undefined && der.length > 0 && matchesPin(der, pin.fingerprint)) return undefined;
  const got = der === undefined || der.length === 0 ? 'no certificate' : certificateFingerprint(der);
  return new PilotError(
    'refused',
    `registry certificate at ${where} does not match the pinned fingerprint: expected ${pin.fingerprint}, got ${got}`,
    'check the fingerprint against the "registry TLS fingerprint" line the registry printed at start',
  );
}
