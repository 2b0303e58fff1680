import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Identity } from '../../src/crypto/identity.js';
import { signChallenge } from '../../src/crypto/registry-signing.js';
import type { JsonObject } from '../../src/protocol/json.js';
import { encodeRegistryFrame, RegistryFrameSplitter } from '../../src/protocol/registry-frame.js';
import { RegistryClient } from '../../src/registry/client.js';

/**
 * A registry that answers as the reference does (PROTOCOL.md §5.2–5.4): `register_ok` without
 * `features`, static challenges only, `{"error":"request failed"}` for anything else. It records
 * every request, so the test sees exactly what a Go registry would receive.
 */
class ReferenceLikeRegistry {
  readonly received: JsonObject[] = [];
  private server!: Server;
  private readonly sockets = new Set<Socket>();
  port = 0;

  constructor(private readonly node: Identity) {}

  async start(): Promise<void> {
    this.server = createServer((socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      const splitter = new RegistryFrameSplitter();
      socket.on('data', (chunk) => {
        for (const r of splitter.push(chunk)) {
          if (!r.ok) return socket.destroy();
          this.received.push(r.value);
          socket.write(encodeRegistryFrame(this.answer(r.value)));
        }
      });
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
  }

  private answer(msg: JsonObject): JsonObject {
    const failed = { type: 'error', error: 'request failed' };
    const staticOk = (challenge: string): boolean => msg.signature === signChallenge(this.node, challenge);
    switch (msg.type) {
      case 'register':
        return {
          type: 'register_ok',
          node_id: 7,
          network_id: 0,
          address: '0:0000.0000.0007',
          public_key: msg.public_key ?? '',
        };
      case 'heartbeat':
        return staticOk('heartbeat:7') ? { type: 'heartbeat_ok', time: 1 } : failed;
      case 'set_tags':
        return staticOk('set_tags:7') ? { type: 'set_tags_ok', node_id: 7, tags: msg.tags ?? null } : failed;
      case 'request_handshake':
        return staticOk(`handshake:7:${String(msg.to_node_id)}`)
          ? { type: 'request_handshake_ok', status: 'delivered' }
          : failed;
      default:
        return failed;
    }
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

describe('registry client with a registry that knows only static challenges (the Go reference)', () => {
  const identity = Identity.generate();
  const registry = new ReferenceLikeRegistry(identity);
  let client: RegistryClient;

  before(async () => {
    await registry.start();
    client = new RegistryClient({ address: `127.0.0.1:${registry.port}`, identity, timeoutMs: 2000 });
  });
  after(async () => {
    client.close();
    await registry.close();
  });

  it('signs with the static challenges of §5.3 after a register_ok without features', async () => {
    const reg = await client.register({ listenAddr: '127.0.0.1:4000' });
    assert.equal(reg.node_id, 7);
    assert.equal(client.signsBody, false);
    assert.equal(client.canWatchHandshakes, false);
    assert.equal((await client.heartbeat()).type, 'heartbeat_ok');
    assert.equal((await client.setTags(['gpu'])).type, 'set_tags_ok');
    assert.equal((await client.requestHandshake(9, 'hi')).status, 'delivered');
    const heartbeat = registry.received.find((m) => m.type === 'heartbeat');
    assert.deepEqual(
      heartbeat,
      { type: 'heartbeat', node_id: 7, signature: signChallenge(identity, 'heartbeat:7') },
      'exactly the reference frame',
    );
  });

  it('does not open the handshake push channel the registry does not have', () => {
    assert.throws(() => client.watchHandshakes(() => undefined), /does not push/);
    assert.equal(registry.received.filter((m) => m.type === 'watch_handshakes').length, 0);
  });
});
