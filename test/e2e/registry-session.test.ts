import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Identity } from '../../src/crypto/identity.js';
import { RegistrySession } from '../../src/daemon/registry-session.js';
import { noWebhooks } from '../../src/webhook-sink.js';
import { silentLogger } from '../../src/log.js';
import { RegistryClient } from '../../src/registry/client.js';
import { RegistryServer } from '../../src/registry/server.js';

describe('registry session against a real registry', () => {
  let server: RegistryServer;
  const clients: RegistryClient[] = [];
  const sessions: RegistrySession[] = [];
  const client = (): RegistryClient => {
    const c = new RegistryClient({
      address: `127.0.0.1:${server.port}`,
      identity: Identity.generate(),
      timeoutMs: 3000,
    });
    clients.push(c);
    return c;
  };
  const session = (registry: RegistryClient, hostname?: string): RegistrySession => {
    const s = new RegistrySession({
      registry,
      listenAddr: '127.0.0.1:4000',
      ...(hostname !== undefined ? { hostname } : {}),
      public: false,
      heartbeatMs: 60_000,
      log: silentLogger(),
      webhooks: noWebhooks,
      onHeartbeat: () => undefined,
      onNotify: () => undefined,
      onReregistered: () => undefined,
    });
    sessions.push(s);
    return s;
  };

  before(async () => {
    server = await RegistryServer.start({ host: '127.0.0.1', port: 0, storePath: ':memory:' });
  });
  after(async () => {
    for (const s of sessions) s.stop();
    for (const c of clients) c.close();
    await server.close();
  });

  it('reports a refused hostname instead of claiming it', async () => {
    const first = session(client(), 'alice');
    await first.start();
    assert.equal(first.hostname, 'alice');
    assert.equal(first.hostnameError, undefined);
    const second = session(client(), 'alice');
    await second.start();
    assert.equal(second.hostname, '', 'no name others cannot find us by');
    assert.match(second.hostnameError ?? '', /hostname "alice" refused by the registry: .*taken/);
  });

  it('opens the push channel with a registry that offers it', async () => {
    const s = session(client());
    await s.start();
    assert.equal(s.watching, true);
    assert.equal(s.reachable, true);
  });
});
