import assert from 'node:assert/strict';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { Identity } from '../../src/crypto/identity.js';
import type { JsonObject } from '../../src/protocol/json.js';
import { RegistryFrameSplitter } from '../../src/protocol/registry-frame.js';
import { RegistryClient } from '../../src/registry/client.js';
import { RegistryServer } from '../../src/registry/server.js';

/** Forwards TCP to the registry and records every request a client sends, by connection number. */
class RecordingProxy {
  readonly requests: { conn: number; msg: JsonObject }[] = [];
  readonly #sockets = new Set<Socket>();
  #conns = 0;

  private constructor(readonly server: Server) {}

  static async start(target: number): Promise<RecordingProxy> {
    const server = createServer();
    const proxy = new RecordingProxy(server);
    server.on('connection', (client) => {
      const conn = ++proxy.#conns;
      const upstream = connect({ host: '127.0.0.1', port: target });
      const splitter = new RegistryFrameSplitter();
      for (const s of [client, upstream]) {
        proxy.#sockets.add(s);
        s.on('error', () => undefined);
        s.on('close', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.on('data', (chunk: Buffer) => {
        for (const r of splitter.push(chunk)) if (r.ok) proxy.requests.push({ conn, msg: r.value });
        upstream.write(chunk);
      });
      upstream.on('data', (chunk: Buffer) => client.write(chunk));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** Drops every connection (the client must reconnect). */
  cut(): void {
    for (const s of this.#sockets) s.destroy();
    this.#sockets.clear();
  }

  close(): void {
    this.cut();
    this.server.close();
  }
}

describe('RegistryClient session heartbeats', () => {
  let server: RegistryServer | undefined;
  let proxy: RecordingProxy | undefined;
  let client: RegistryClient | undefined;

  afterEach(async () => {
    client?.close();
    proxy?.close();
    await server?.close();
  });

  it('sends heartbeats unsigned once its connection is bound, and signed again after a reconnect', async () => {
    server = await RegistryServer.start({ host: '127.0.0.1', port: 0, storePath: ':memory:' });
    proxy = await RecordingProxy.start(server.port);
    client = new RegistryClient({ address: `127.0.0.1:${proxy.port}`, identity: Identity.generate(), timeoutMs: 3000 });
    await client.register({ listenAddr: '127.0.0.1:4000' });
    for (let i = 0; i < 2; i++) assert.equal((await client.heartbeat()).type, 'heartbeat_ok');
    proxy.cut();
    for (let i = 0; i < 2; i++) assert.equal((await client.heartbeat()).type, 'heartbeat_ok');
    const seen = proxy.requests.map(
      ({ conn, msg }) => `${conn}:${String(msg.type)}:${msg.signature ? 'signed' : 'bare'}`,
    );
    assert.deepEqual(seen, [
      '1:register:signed',
      '1:heartbeat:bare',
      '1:heartbeat:bare',
      '2:heartbeat:signed',
      '2:heartbeat:bare',
    ]);
  });

  it('signs every heartbeat for a registry that does not offer them', async () => {
    server = await RegistryServer.start({ host: '127.0.0.1', port: 0, storePath: ':memory:' });
    proxy = await RecordingProxy.start(server.port);
    const identity = Identity.generate();
    client = new RegistryClient({ address: `127.0.0.1:${proxy.port}`, identity, timeoutMs: 3000 });
    const reply = await client.register({ listenAddr: '127.0.0.1:4000' });
    // What a client learns from a registry without the feature: a fresh client given only the id.
    client.close();
    client = new RegistryClient({ address: `127.0.0.1:${proxy.port}`, identity, timeoutMs: 3000 });
    client.nodeId = reply.node_id as number;
    for (let i = 0; i < 2; i++) assert.equal((await client.heartbeat()).type, 'heartbeat_ok');
    const heartbeats = proxy.requests.filter(({ msg }) => msg.type === 'heartbeat');
    assert.equal(heartbeats.length, 2);
    assert.ok(heartbeats.every(({ msg }) => typeof msg.signature === 'string'));
  });
});
