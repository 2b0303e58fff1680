import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { PostgresRegistryStore } from '../../src/registry/postgres-store.js';
import type { NodeRecord } from '../../src/registry/store.js';
import { type PgServer, startPostgres } from '../pg-server.js';
import { postgresSkip } from './registry-postgres-kind.js';

/** Asks until `check` holds for the answer (1 s at most: changes reach other processes within a second). */
async function eventually(ask: () => Promise<NodeRecord | undefined>, check: (n: NodeRecord | undefined) => boolean) {
  const deadline = performance.now() + 1000;
  for (;;) {
    const node = await ask();
    if (check(node)) return node;
    if (performance.now() > deadline) assert.fail(`not seen within 1 s: ${JSON.stringify(node)}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const key = (i: number): string => Buffer.alloc(32, i).toString('base64');

describe('PostgreSQL store: records kept in memory across processes', { skip: postgresSkip() }, () => {
  let server: PgServer;
  let url: string;
  let a: PostgresRegistryStore;
  let b: PostgresRegistryStore;

  before(async () => {
    server = await startPostgres();
    url = await server.createDatabase();
    [a, b] = await Promise.all([PostgresRegistryStore.open(url), PostgresRegistryStore.open(url)]);
  });

  after(async () => {
    await Promise.all([a?.close(), b?.close()]);
    await server?.stop();
  });

  it("another process's committed change is seen at once, before its announcement arrives", async () => {
    const created = await a.createNode({ publicKey: key(1), owner: '', realAddr: '127.0.0.1:1', signsBody: true });
    await a.shared.recordLiveness(new Map([[created.id, Date.now()]]), new Map());
    await eventually(
      () => b.getNode(created.id),
      (n) => n?.publicKey === key(1),
    );
    // b now holds a copy; every change a commits must be what b answers next, with no wait.
    for (let i = 0; i < 20; i++) {
      await b.getNode(created.id);
      await a.updateNode(created.id, { hostname: `h${i}`, isPublic: i % 2 === 0 });
      const seen = await b.getNode(created.id);
      assert.equal(seen?.hostname, `h${i}`);
      assert.equal(seen?.isPublic, i % 2 === 0);
      assert.equal((await b.getNodeByKey(key(1)))?.hostname, `h${i}`);
      assert.equal((await b.getNodeByHostname(`h${i}`))?.id, created.id);
    }
    await a.updateNode(created.id, { hostname: '' });
    assert.equal(await b.getNodeByHostname('h19'), undefined);
  });

  it('another process takes a node back for online once it heartbeats after a long silence', async () => {
    const old = Date.now() - 400_000;
    const node = await a.createNode({ publicKey: key(2), owner: '', realAddr: '127.0.0.1:2' });
    await a.shared.recordLiveness(new Map([[node.id, old]]), new Map());
    await eventually(
      () => b.getNode(node.id),
      (n) => n?.lastSeen === old,
    );
    const now = Date.now();
    await a.shared.recordLiveness(new Map([[node.id, now]]), new Map());
    await eventually(
      () => b.getNode(node.id),
      (n) => n?.lastSeen === now,
    );
  });

  it('forgets everything when the whole state is replaced', async () => {
    const node = await a.createNode({ publicKey: key(3), owner: '', realAddr: '127.0.0.1:3' });
    await a.shared.recordLiveness(new Map([[node.id, Date.now()]]), new Map());
    assert.equal((await b.getNode(node.id))?.id, node.id);
    const contents = await a.exportState();
    await a.replaceState({ ...contents, nodes: contents.nodes.filter((n) => n.id !== node.id) });
    await eventually(
      () => b.getNode(node.id),
      (n) => n === undefined,
    );
    assert.equal(await b.getNodeByKey(key(3)), undefined);
  });
});
