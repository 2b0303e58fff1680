import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Identity } from '../../src/crypto/identity.js';
import { NetStack } from '../../src/daemon/net-stack.js';
import { noWebhooks } from '../../src/webhook-sink.js';
import { silentLogger } from '../../src/log.js';
import { encodeEvent } from '../../src/protocol/eventstream.js';
import { RegistryClient } from '../../src/registry/client.js';
import { RegistryKeys, registryKeyFetch } from '../../src/registry-keys.js';
import type { PilotConn } from '../../src/sdk/types.js';
import { dataExchangeStarter } from '../../src/services/dataexchange/service.js';
import { startEcho } from '../../src/services/echo.js';
import { startEventStream } from '../../src/services/eventstream/index.js';
import { startTaskSubmit } from '../../src/services/tasks/service.js';
import { ExtFrameType, jsonFrame } from '../../src/protocol/tasksubmit.js';
import type { RunningService, ServiceContext } from '../../src/services/types.js';

const SELF = { network: 0, node: 20 };
const delay = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Every built-in service closes its side when the peer closes (FIN) or goes away (RST), at once:
 * nothing of theirs stays in CLOSE_WAIT (and the peer in FIN_WAIT) until a restart.
 */
describe('built-in services close their side when the peer closes', () => {
  let stack: NetStack;
  let home: string;
  let registry: RegistryClient;
  const services: RunningService[] = [];

  before(async () => {
    home = mkdtempSync(join(tmpdir(), 'pilot-svc-'));
    stack = new NetStack({ localAddr: SELF, transmit: () => undefined });
    registry = new RegistryClient({ address: '127.0.0.1:1', timeoutMs: 200 });
    const ctx: ServiceContext = {
      net: stack,
      localAddr: SELF,
      home,
      identity: Identity.generate(),
      registry,
      keys: new RegistryKeys(registryKeyFetch(registry)),
      webhooks: noWebhooks,
      log: silentLogger(),
      now: Date.now,
    };
    await startEcho(stack);
    services.push(await dataExchangeStarter()(ctx), await startEventStream(ctx), await startTaskSubmit(ctx));
  });

  after(async () => {
    for (const s of services) await s.close();
    registry.close();
    stack.close();
    rmSync(home, { recursive: true, force: true });
  });

  /** Connections in any state but TIME_WAIT (a closed connection lingering is not held by anyone). */
  const open = (): string[] =>
    stack.endpoint
      .connections()
      .filter((c) => c.state !== 'TIME_WAIT')
      .map((c) => `${c.localPort}:${c.state}`);

  async function settled(what: string, ms = 1500): Promise<void> {
    const deadline = Date.now() + ms;
    while (open().length > 0) {
      if (Date.now() > deadline) assert.fail(`${what}: still open after ${ms} ms: ${open().join(', ')}`);
      await delay(10);
    }
  }

  /** Resolves when the service's side ends our stream (its FIN), with what it sent before. */
  function ended(conn: PilotConn, ms = 1500): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const parts: Buffer[] = [];
      const timer = setTimeout(
        () =>
          reject(
            new Error(
              `port ${conn.remotePort}: the service did not close its side within ${ms} ms (${open().join(', ')})`,
            ),
          ),
        ms,
      );
      conn.on('data', (b: Buffer) => parts.push(b));
      conn.on('error', () => undefined);
      conn.once('end', () => {
        clearTimeout(timer);
        resolve(Buffer.concat(parts));
      });
    });
  }

  for (const [name, port, first] of [
    ['echo', 7, Buffer.from('x')],
    ['data exchange', 1001, Buffer.alloc(0)],
    ['event stream (subscribed)', 1002, Buffer.from(encodeEvent({ topic: 'jobs', payload: new Uint8Array(0) }))],
    ['task submit (nothing sent)', 1003, Buffer.alloc(0)],
    ['task submit (half a frame sent)', 1003, Buffer.from([0, 0, 1, 0, 0, 0])],
  ] as const) {
    it(`${name} on port ${port}: FIN from the peer`, async () => {
      const conn = await stack.dial(SELF, port);
      const done = ended(conn);
      if (first.length > 0) conn.write(first);
      await delay(50);
      conn.end();
      await done;
      await settled(name);
    });
  }

  it('data exchange: a connection it refused closes as soon as the peer finishes, even if the peer sent on meanwhile', async () => {
    const conn = await stack.dial(SELF, 1001);
    const done = ended(conn, 3000);
    conn.write(Buffer.alloc(64 * 1024, 0x5a)); // not a frame: ERR, and the service ends its side
    for (let i = 0; i < 64; i++) conn.write(Buffer.alloc(64 * 1024, 0x5a));
    conn.end();
    const got = await done;
    assert.match(got.toString('latin1'), /ERR/);
    await settled('refused data exchange connection', 3000);
  });

  it('data exchange: a peer that never finishes after a refusal is reset 5 s later', async () => {
    const conn = await stack.dial(SELF, 1001);
    const closed = new Promise<number>((resolve) => conn.once('close', () => resolve(Date.now())));
    conn.on('error', () => undefined);
    conn.on('data', () => undefined);
    conn.write(Buffer.alloc(1024, 0x5a));
    const refusedAt = Date.now();
    const at = await Promise.race([closed, delay(7000).then(() => 0)]);
    assert.ok(at > 0, 'reset within 7 s');
    assert.ok(at - refusedAt >= 4500, `not before the linger (${at - refusedAt} ms)`);
    await settled('after the reset');
  });

  it('task submit watch (a worker waiting for tasks): FIN from the peer', async () => {
    const conn = await stack.dial(SELF, 1003);
    const done = ended(conn);
    conn.write(jsonFrame(ExtFrameType.Local, { op: 'watch' }));
    await delay(100);
    conn.end();
    const got = await done;
    assert.ok(got.includes('watching'), 'the watch was set up before the close');
    await settled('task watch');
    assert.equal((services[2]!.stats() as { refused?: number }).refused ?? 0, 0);
  });

  it('task submit watch and event stream subscription: the peer goes away (RST)', async () => {
    const watch = await stack.dial(SELF, 1003);
    watch.on('error', () => undefined);
    watch.write(jsonFrame(ExtFrameType.Local, { op: 'watch' }));
    const sub = await stack.dial(SELF, 1002);
    sub.on('error', () => undefined);
    sub.write(encodeEvent({ topic: 'jobs', payload: new Uint8Array(0) }));
    await delay(100);
    watch.destroy();
    sub.destroy();
    await settled('after RST');
  });
});
