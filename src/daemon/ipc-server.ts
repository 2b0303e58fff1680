import { chmod, unlink } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { PilotError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Datagram } from '../sdk/types.js';
import { IpcSession, type IpcBackend } from './ipc-session.js';

/** Answers if some process already serves this socket path. */
function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createConnection(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}

/** The Unix socket drivers and pilotctl talk to (PROTOCOL.md §8.1): mode 0600, removed on exit. */
export class IpcServer {
  private readonly sessions = new Set<IpcSession>();
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly path: string,
  ) {}

  static async start(path: string, backend: IpcBackend, log: Logger): Promise<IpcServer> {
    if (await socketAnswers(path)) {
      throw new PilotError('already_exists', `another daemon is serving ${path}`, 'stop it first (pilotctl daemon stop) or use another -socket');
    }
    await unlink(path).catch(() => undefined);
    const server = createServer();
    const ipc = new IpcServer(server, path);
    server.on('connection', (socket) => {
      const session = new IpcSession(socket, backend, log);
      ipc.sessions.add(session);
      ipc.sockets.add(socket);
      socket.on('close', () => {
        ipc.sessions.delete(session);
        ipc.sockets.delete(socket);
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    await chmod(path, 0o600);
    return ipc;
  }

  /** Datagrams go to every connected client, as in the reference. */
  broadcastDatagram(d: Datagram): void {
    for (const s of this.sessions) s.deliverDatagram(d);
  }

  async close(): Promise<void> {
    const closing = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    await closing;
    await unlink(this.path).catch(() => undefined);
  }
}
