import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

/**
 * A TCP load balancer for tests, as an operator would put in front of several registry
 * processes: each new connection goes to the next backend in turn, skipping one that refuses.
 * Connections to a backend that dies are dropped with it; the client's reconnect lands elsewhere.
 */
export class TcpBalancer {
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  #next = 0;

  private constructor(
    server: Server,
    readonly backends: number[],
  ) {
    this.#server = server;
  }

  static async start(backends: number[]): Promise<TcpBalancer> {
    const server = createServer();
    const balancer = new TcpBalancer(server, backends);
    server.on('connection', (client) => balancer.#forward(client, 0));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return balancer;
  }

  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  #forward(client: Socket, tried: number): void {
    if (tried >= this.backends.length) {
      client.destroy();
      return;
    }
    const port = this.backends[this.#next++ % this.backends.length] as number;
    client.pause();
    const upstream = connect({ host: '127.0.0.1', port });
    let connected = false;
    upstream.once('connect', () => {
      connected = true;
      this.#track(client);
      this.#track(upstream);
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    upstream.once('error', () => {
      if (!connected) this.#forward(client, tried + 1);
    });
  }

  #track(socket: Socket): void {
    this.#sockets.add(socket);
    socket.once('close', () => this.#sockets.delete(socket));
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
