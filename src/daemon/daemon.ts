import type { Logger } from '../log.js';
import type { DaemonConfig } from './config.js';
import { IpcServer } from './ipc-server.js';
import { RunningNode } from './node.js';

/**
 * The daemon process's part: a node, and the IPC server through which drivers and pilotctl use
 * it. Started in that order and stopped in reverse.
 */
export class Daemon {
  private stopped = false;

  private constructor(
    readonly config: DaemonConfig,
    readonly node: RunningNode,
    private readonly ipc: IpcServer,
    private readonly unsubscribe: () => void,
  ) {}

  static async start(config: DaemonConfig, log: Logger): Promise<Daemon> {
    const node = await RunningNode.start(config, log);
    try {
      const ipc = await IpcServer.start(config.socket, node, log.child({ part: 'ipc' }));
      // Datagrams go to every connected client, as in the reference.
      const unsubscribe = node.onDatagram((d) => ipc.broadcastDatagram(d));
      return new Daemon(config, node, ipc, unsubscribe);
    } catch (err) {
      await node.close();
      throw err;
    }
  }

  get nodeId(): number {
    return this.node.nodeId;
  }

  get address(): string {
    return this.node.address;
  }

  get socketPath(): string {
    return this.config.socket;
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.unsubscribe();
    await this.ipc.close().catch(() => undefined);
    await this.node.close();
  }
}
