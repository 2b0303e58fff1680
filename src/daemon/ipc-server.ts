import { chmod, unlink } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { PilotError } from '../errors.js';
import type { Logger } from '../log.js';
import type { JsonObject } from '../protocol/json.js';
import type { Datagram } from '../pilot-net.js';
import { IpcSession, type IpcBackend, type IpcSessionCounts } from './ipc-session.js';

export interface IpcServerOptions {
  /** How long the connections of a client that went away may take to close before they are reset (default 5 s). */
  releaseLingerMs?: number;
}

/** What the IPC clients hold, summed (InfoOK `ipc`). */
export interface IpcResources extends IpcSessionCounts {
  clients: number;
}

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
  /** Connected sessions and those of gone clients whose connections are still closing. */
  private readonly all = new Set<IpcSession>();
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly path: string,
  ) {}

  static async start(
    path: string,
    backend: IpcBackend,
    log: Logger,
    options: IpcServerOptions = {},
  ): Promise<IpcServer> {
    if (await socketAnswers(path)) {
      throw new PilotError(
        'already_exists',
        `another daemon is serving ${path}`,
        'stop it first (pilotctl daemon stop) or use another -socket',
      );
    }
    await unlink(path).catch(() => undefined);
    const server = createServer();
    const ipc = new IpcServer(server, path);
    // A session outlives its socket while the connections it released are closing.
    server.on('connection', (socket) => {
      const session = new IpcSession(socket, backend, log, {
        ...(options.releaseLingerMs !== undefined ? { releaseLingerMs: options.releaseLingerMs } : {}),
        serverStats: () => ipc.resourcesJson(),
      });
      ipc.sessions.add(session);
      ipc.sockets.add(socket);
      ipc.all.add(session);
      socket.on('close', () => {
        ipc.sessions.delete(session);
        ipc.sockets.delete(socket);
        ipc.forgetWhenIdle(session);
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

  /** Clients connected now, and everything the clients (present and gone) still hold. */
  resources(): IpcResources {
    const r: IpcResources = { clients: this.sessions.size, conns: 0, listeners: 0, dials: 0, lingering: 0 };
    for (const s of this.all) {
      const c = s.counts();
      r.conns += c.conns;
      r.listeners += c.listeners;
      r.dials += c.dials;
      r.lingering += c.lingering;
    }
    return r;
  }

  private resourcesJson(): JsonObject {
    return { ...this.resources() };
  }

  /** Drops a gone client's session once it holds nothing (its released connections have closed). */
  private forgetWhenIdle(session: IpcSession): void {
    session.onIdle(() => this.all.delete(session));
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
