import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatAddr, type Addr } from '../../src/protocol/address.js';
import { decodeIpcMessage, encodeIpcFrame, IpcFrameSplitter, type IpcMessage } from '../../src/protocol/ipc.js';
import type { JsonObject } from '../../src/protocol/json.js';

/**
 * A minimal daemon for SDK tests: speaks the §8 frames over a Unix socket and loops connections
 * back between its own clients (a Dial to a port some client bound becomes an Accept for it).
 */

export interface PeerClient {
  readonly socket: Socket;
  /** Every message this client sent, decoded, with its encoded length (cmd + payload). */
  readonly messages: Array<{ msg: IpcMessage; length: number }>;
}

/** Return true when the test handled the message itself. */
export type Intercept = (client: PeerClient, msg: IpcMessage) => boolean;

export const PEER_ADDR: Addr = { network: 0, node: 5 };

interface LoopConn {
  client: PeerClient;
  peerId: number;
}

export class TestDaemon {
  readonly clients: PeerClient[] = [];
  intercept: Intercept | null = null;
  /** What InfoOK lists as `ipc_features` (none: a daemon without the pilot-ts extensions). */
  features: string[] = [];
  private readonly bound = new Map<number, PeerClient>();
  private readonly conns = new Map<number, LoopConn>();
  private nextConnId = 1;
  private nextEphemeral = 49152;

  private constructor(
    readonly path: string,
    private readonly dir: string,
    private readonly server: Server,
  ) {}

  static async start(): Promise<TestDaemon> {
    const dir = mkdtempSync(join(tmpdir(), 'pilot-sdk-'));
    const path = join(dir, 'pilot.sock');
    const server = createServer();
    const daemon = new TestDaemon(path, dir, server);
    server.on('connection', (socket) => daemon.accept(socket));
    await new Promise<void>((resolve) => server.listen(path, resolve));
    return daemon;
  }

  /** Resolves once `n` clients have connected. */
  async waitForClients(n: number): Promise<void> {
    while (this.clients.length < n) await new Promise((r) => setTimeout(r, 5));
  }

  write(client: PeerClient, msg: IpcMessage): boolean {
    return client.socket.write(encodeIpcFrame(msg));
  }

  async close(): Promise<void> {
    for (const c of this.clients) c.socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    rmSync(this.dir, { recursive: true, force: true });
  }

  private accept(socket: Socket): void {
    const client: PeerClient = { socket, messages: [] };
    this.clients.push(client);
    const splitter = new IpcFrameSplitter();
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => {
      for (const frame of splitter.push(chunk)) {
        if (!frame.ok) {
          socket.destroy();
          return;
        }
        const decoded = decodeIpcMessage(frame.value);
        if (!decoded.ok) {
          this.write(client, { cmd: 'Error', code: 1, message: decoded.error.message });
          continue;
        }
        client.messages.push({ msg: decoded.value, length: frame.value.length });
        if (this.intercept?.(client, decoded.value)) continue;
        this.handle(client, decoded.value);
      }
    });
  }

  private handle(client: PeerClient, msg: IpcMessage): void {
    const reply = (m: IpcMessage): void => void this.write(client, m);
    const json = (cmd: 'HandshakeOK' | 'SetHostnameOK' | 'ResolveHostnameOK', obj: JsonObject): void =>
      reply({ cmd, json: obj });
    switch (msg.cmd) {
      case 'Info':
        reply({
          cmd: 'InfoOK',
          json: {
            node_id: PEER_ADDR.node,
            address: formatAddr(PEER_ADDR),
            hostname: '',
            uptime_secs: 12,
            ports: this.bound.size,
            peer_list: [],
            conn_list: [],
            ...(this.features.length > 0 ? { ipc_features: this.features } : {}),
          },
        });
        return;
      case 'Bind':
        if (this.bound.has(msg.port))
          return reply({ cmd: 'Error', code: 1, message: `port ${msg.port} already bound` });
        this.bound.set(msg.port, client);
        return reply({ cmd: 'BindOK', port: msg.port });
      case 'Dial': {
        const owner = this.bound.get(msg.port);
        if (!owner) return reply({ cmd: 'Error', code: 1, message: 'connection refused' });
        const a = this.nextConnId++;
        const b = this.nextConnId++;
        this.conns.set(a, { client, peerId: b });
        this.conns.set(b, { client: owner, peerId: a });
        reply({ cmd: 'DialOK', connId: a });
        this.write(owner, {
          cmd: 'Accept',
          localPort: msg.port,
          connId: b,
          remoteAddr: PEER_ADDR,
          remotePort: this.nextEphemeral++,
        });
        return;
      }
      case 'Send': {
        const conn = this.conns.get(msg.connId);
        const peer = conn && this.conns.get(conn.peerId);
        if (!conn || !peer) return reply({ cmd: 'Error', code: 1, message: 'connection not found' });
        for (let off = 0; off < msg.data.length; off += 4096) {
          this.write(peer.client, { cmd: 'Recv', connId: conn.peerId, data: msg.data.subarray(off, off + 4096) });
        }
        return;
      }
      case 'Close': {
        const conn = this.conns.get(msg.connId);
        // As the daemon (and the reference): a Close of an unknown or already closed id is a CloseOK.
        if (!conn) return reply({ cmd: 'CloseOK', connId: msg.connId });
        this.conns.delete(msg.connId);
        reply({ cmd: 'CloseOK', connId: msg.connId });
        const peer = this.conns.get(conn.peerId);
        if (peer) {
          this.conns.delete(conn.peerId);
          this.write(peer.client, { cmd: 'CloseOK', connId: conn.peerId });
        }
        return;
      }
      case 'SendTo':
        for (const c of this.clients)
          this.write(c, { cmd: 'RecvFrom', srcAddr: PEER_ADDR, srcPort: 40000, dstPort: msg.port, data: msg.data });
        return;
      case 'Handshake':
        if (msg.op.sub === 'Pending')
          return json('HandshakeOK', {
            pending: [{ justification: 'hi', node_id: 9, public_key: 'k', received_at: 100 }],
          });
        if (msg.op.sub === 'Trusted') return json('HandshakeOK', { trusted: [] });
        if (msg.op.sub === 'Outgoing') return json('HandshakeOK', { outgoing: [] });
        return json('HandshakeOK', { node_id: msg.op.nodeId, status: msg.op.sub === 'Request' ? 'sent' : 'approved' });
      case 'SetHostname':
        return json('SetHostnameOK', { type: 'set_hostname_ok', hostname: msg.hostname, node_id: PEER_ADDR.node });
      case 'ResolveHostname':
        if (msg.hostname !== 'web') return reply({ cmd: 'Error', code: 1, message: 'hostname not found' });
        return json('ResolveHostnameOK', {
          type: 'resolve_hostname_ok',
          address: formatAddr(PEER_ADDR),
          node_id: PEER_ADDR.node,
          hostname: 'web',
          public: true,
        });
      default:
        reply({ cmd: 'Error', code: 1, message: `unknown command: ${msg.cmd}` });
    }
  }
}
