import { createSocket, type RemoteInfo, type Socket, type SocketOptions } from 'node:dgram';
import { lookup as lookupCallback } from 'node:dns';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { PilotError } from '../errors.js';
import { splitHostPort } from '../protocol/host-port.js';
import { makeEndpoint, type ListenAddress, type UdpEndpoint } from './endpoint.js';

const SOCKET_BUFFER_BYTES = 4 * 1024 * 1024;

export type MessageHandler = (data: Buffer, from: UdpEndpoint) => void;

/**
 * Datagrams go to address literals (endpoints are resolved before use): they are sent at once,
 * without the resolver dgram consults by default, which defers every send to the next tick.
 */
const literalLookup: NonNullable<SocketOptions['lookup']> = (host, options, callback) => {
  const family = isIP(host);
  if (family !== 0) callback(null, host, family);
  else lookupCallback(host, options, callback);
};

/** One bound UDP socket; IPv4, IPv6, or dual-stack when bound to `::`. */
export class UdpSocket {
  readonly #socket: Socket;
  readonly family: 4 | 6;
  readonly dualStack: boolean;
  readonly port: number;
  #closed = false;

  private constructor(socket: Socket, family: 4 | 6, dualStack: boolean) {
    this.#socket = socket;
    this.family = family;
    this.dualStack = dualStack;
    this.port = socket.address().port;
  }

  static async bind(
    listen: ListenAddress,
    onMessage: MessageHandler,
    onError: (err: Error) => void,
  ): Promise<UdpSocket> {
    const dualStack = listen.family === 6 && listen.host === '::';
    const socket = createSocket({
      type: listen.family === 4 ? 'udp4' : 'udp6',
      ipv6Only: listen.family === 6 && !dualStack,
      lookup: literalLookup,
    });
    await new Promise<void>((resolve, reject) => {
      const fail = (err: Error): void =>
        reject(
          new PilotError(
            'unavailable',
            `cannot listen on UDP ${listen.host}:${listen.port}: ${err.message}`,
            undefined,
            { cause: err },
          ),
        );
      socket.once('error', fail);
      socket.bind(listen.port, listen.host, () => {
        socket.off('error', fail);
        resolve();
      });
    });
    for (const set of [(n: number) => socket.setRecvBufferSize(n), (n: number) => socket.setSendBufferSize(n)]) {
      try {
        set(SOCKET_BUFFER_BYTES);
      } catch {
        // The OS may cap buffer sizes; the defaults still work.
      }
    }
    socket.on('error', onError);
    socket.on('message', (data: Buffer, rinfo: RemoteInfo) => {
      const from = makeEndpoint(rinfo.address, rinfo.port);
      if (from) onMessage(data, from);
    });
    return new UdpSocket(socket, listen.family, dualStack);
  }

  canReach(to: UdpEndpoint): boolean {
    return to.family === this.family || (this.dualStack && to.family === 4);
  }

  /** Fire and forget; false when the datagram could not be handed to the OS. */
  send(bytes: Uint8Array | readonly Uint8Array[], to: UdpEndpoint, onError: (err: Error) => void): boolean {
    if (this.#closed || !this.canReach(to)) return false;
    const host = this.family === 6 && to.family === 4 ? `::ffff:${to.host}` : to.host;
    try {
      this.#socket.send(bytes, to.port, host, (err) => {
        if (err) onError(err);
      });
      return true;
    } catch (err) {
      onError(err instanceof Error ? err : new Error(String(err)));
      return false;
    }
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    return new Promise((resolve) => this.#socket.close(() => resolve()));
  }

  /** Resolves `host:port` (hostname allowed) to an address this socket can reach. */
  async resolve(text: string): Promise<UdpEndpoint> {
    const parts = splitHostPort(text);
    if (!parts || parts.port === 0 || parts.host === '')
      throw new PilotError('invalid_argument', `invalid beacon address "${text}"`);
    const literal = makeEndpoint(parts.host, parts.port);
    if (literal) return literal;
    const found = await lookup(parts.host, { all: true }).catch((err: unknown) => {
      throw new PilotError('unavailable', `cannot resolve beacon host "${parts.host}"`, undefined, { cause: err });
    });
    for (const entry of found) {
      const ep = makeEndpoint(entry.address, parts.port);
      if (ep && this.canReach(ep)) return ep;
    }
    throw new PilotError('unavailable', `beacon host "${parts.host}" has no address of the listen socket's family`);
  }
}
