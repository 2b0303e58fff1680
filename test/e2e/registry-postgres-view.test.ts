import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
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

  it('a change committed through one process is what the other answers next', async () => {
    const created = await a.createNode({ publicKey: key(1), owner: '', realAddr: '127.0.0.1:1', signsBody: true });
    await a.shared.recordLiveness(new Map([[created.id, Date.now()]]), new Map());
    await eventually(
      () => b.getNode(created.id),
      (n) => n?.publicKey === key(1),
    );
    // Both hold a copy; every change one commits must be what the other answers next, with no wait.
    const t0 = performance.now();
    for (let i = 0; i < 100; i++) {
      const [writer, reader] = i % 2 === 0 ? [a, b] : [b, a];
      await reader.getNode(created.id);
      await writer.updateNode(created.id, { hostname: `h${i}`, isPublic: i % 3 === 0 });
      const seen = await reader.getNode(created.id);
      assert.equal(seen?.hostname, `h${i}`);
      assert.equal(seen?.isPublic, i % 3 === 0);
      assert.equal((await reader.getNodeByKey(key(1)))?.hostname, `h${i}`);
      assert.equal((await reader.getNodeByHostname(`h${i}`))?.id, created.id);
      assert.equal(await reader.getNodeByHostname(`h${i - 1}`), undefined);
    }
    await a.updateNode(created.id, { hostname: '' });
    assert.equal(await b.getNodeByHostname('h99'), undefined);
    // Each change waited for the other process's acknowledgement, not for its lease to run out.
    assert.ok(performance.now() - t0 < 20_000, `100 changes took ${Math.round(performance.now() - t0)} ms`);
  });

  it('a change waits for a process that holds a lease and does not answer, until its lease runs out', async () => {
    const node = await a.createNode({ publicKey: key(4), owner: '', realAddr: '127.0.0.1:4' });
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await client.query(
        "INSERT INTO registry_leases (member, until) VALUES ('silent', clock_timestamp() + interval '700 milliseconds')",
      );
      let t0 = performance.now();
      await a.updateNode(node.id, { tags: ['x'] });
      const waited = performance.now() - t0;
      assert.ok(waited >= 600, `waited ${Math.round(waited)} ms for the silent lease`);
      t0 = performance.now();
      await a.updateNode(node.id, { tags: ['x'] });
      assert.ok(performance.now() - t0 < 300, 'a patch that changes nothing waits for no one');
      t0 = performance.now();
      await a.updateNode(node.id, { tags: ['y'] });
      assert.ok(performance.now() - t0 < 300, 'the silent lease ran out');
    } finally {
      await client.query("DELETE FROM registry_leases WHERE member = 'silent'");
      await client.end();
    }
  });

  it('a process that closes gives its lease up', async () => {
    const node = await a.createNode({ publicKey: key(5), owner: '', realAddr: '127.0.0.1:5' });
    const c = await PostgresRegistryStore.open(url);
    // Its first lease is taken once it listens.
    await new Promise((r) => setTimeout(r, 100));
    await c.close();
    const t0 = performance.now();
    await a.updateNode(node.id, { tags: ['z'] });
    assert.ok(performance.now() - t0 < 300, `a change waited ${Math.round(performance.now() - t0)} ms`);
  });

  it('a new node is seen (and proven, if it signed) by every process at once, with no separate write', async () => {
    const before = Date.now();
    const node = await a.createNode({ publicKey: key(6), owner: '', realAddr: '127.0.0.1:6', signsBody: true });
    assert.ok((node.lastSeen ?? 0) >= before && node.lastProven === node.lastSeen);
    const seen = await b.getNode(node.id);
    assert.equal(seen?.lastSeen, node.lastSeen);
    assert.equal(seen?.lastProven, node.lastProven);
    const unsigned = await a.createNode({ publicKey: key(7), owner: '', realAddr: '127.0.0.1:7' });
    assert.equal(unsigned.lastProven, undefined);
  });

  it('reads, inserts and replay marks of one turn share a statement; a failed insert fails only the inserts', async () => {
    const known = await a.createNode({ publicKey: key(8), owner: '', realAddr: '127.0.0.1:8' });
    const c = await PostgresRegistryStore.open(url);
    try {
      // c holds no copies: the reads go to the database in the same turn as the inserts.
      const [read, made, twice, missing, first, replay] = await Promise.allSettled([
        c.getNodeByKey(key(8)),
        c.createNode({ publicKey: key(9), owner: 'o9', realAddr: '127.0.0.1:9' }),
        c.createNode({ publicKey: key(9), owner: 'o9', realAddr: '127.0.0.1:9' }),
        c.getNode(known.id + 1000),
        c.shared.advanceSignedAt(key(9), 'register', 1000),
        c.shared.advanceSignedAt(key(9), 'register', 1000),
      ]);
      assert.deepEqual(
        [first, replay].map((r) => r.status === 'fulfilled' && r.value),
        [true, false],
        'a signed_at is accepted once',
      );
      assert.equal(await a.shared.advanceSignedAt(key(9), 'register', 1000), false, 'by one process only');
      assert.equal(await a.shared.advanceSignedAt(key(9), 'register', 999), false);
      assert.equal(read.status === 'fulfilled' && read.value?.id, known.id);
      assert.equal(made.status === 'fulfilled' && made.value.owner, 'o9');
      assert.equal(twice.status === 'rejected' && (twice.reason as Error).name, 'StoreConflictError');
      assert.deepEqual(missing, { status: 'fulfilled', value: undefined });

      const admin = new pg.Client({ connectionString: url });
      await admin.connect();
      const { rows } = await admin.query<{ last_value: string }>('SELECT last_value FROM node_ids');
      await admin.query("SELECT setval('node_ids', 4294967295)");
      try {
        const [exhausted, stillRead, stillMarked] = await Promise.allSettled([
          c.createNode({ publicKey: key(10), owner: '', realAddr: '127.0.0.1:10' }),
          c.getNodeByKey(key(9)),
          c.shared.advanceSignedAt(key(10), 'register', 1000),
        ]);
        assert.equal(exhausted.status === 'rejected' && (exhausted.reason as Error).name, 'RangeError');
        assert.equal(stillRead.status === 'fulfilled' && stillRead.value?.owner, 'o9');
        assert.deepEqual(stillMarked, { status: 'fulfilled', value: true });
      } finally {
        await admin.query('SELECT setval($1, $2)', ['node_ids', rows[0]?.last_value]);
        await admin.end();
      }
    } finally {
      await c.close();
    }
  });

  it('another process takes a node back for online as soon as its heartbeat after a long silence is answered', async () => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      for (let round = 0; round < 20; round++) {
        const node = await a.createNode({ publicKey: key(100 + round), owner: '', realAddr: '127.0.0.1:2' });
        // Silent since long ago (stored times never move backwards through the store).
        const old = Date.now() - 400_000;
        await client.query('UPDATE nodes SET last_seen = $1 WHERE id = $2', [old, node.id]);
        await eventually(
          () => b.getNode(node.id),
          (n) => n?.lastSeen === old,
        );
        // Later than the creation time a's copy carries (the raw UPDATE went around it): a time a
        // copy already holds is taken for stored and not written again.
        const now = Math.max(Date.now(), (node.lastSeen ?? 0) + 1);
        await a.shared.recordLiveness(new Map([[node.id, now]]), new Map());
        // The heartbeat is answered after this: the other process must not answer "offline" next.
        assert.equal((await b.getNode(node.id))?.lastSeen, now, `round ${round}`);
      }
    } finally {
      await client.end();
    }
  });

  it('a process whose listening connection drops serves no copy until it listens again', async () => {
    const node = await a.createNode({ publicKey: key(11), owner: '', realAddr: '127.0.0.1:11' });
    assert.equal((await b.getNode(node.id))?.id, node.id);
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    try {
      // The listening connections are the ones that renew leases.
      const { rows } = await admin.query(
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid()
           AND (query LIKE '%registry_leases%' OR query LIKE '%pilot_lease%')`,
      );
      assert.ok(rows.length >= 2, `${rows.length} listening connections ended`);
      for (let i = 0; i < 5; i++) {
        await a.updateNode(node.id, { tags: [`drop${i}`] });
        assert.deepEqual((await b.getNode(node.id))?.tags, [`drop${i}`]);
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      await admin.end();
    }
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
