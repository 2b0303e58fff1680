import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import type { JsonObject } from '../../src/protocol/json.js';
import { Driver } from '../../src/sdk/driver.js';
import type { Cluster, DaemonHandle } from './cluster.js';
import { RawConn } from './registry-helpers.js';
import { postgresCluster } from './registry-postgres-kind.js';
import { until } from '../wait.js';

const TOKEN = 'failover-admin-token';

async function makeTrust(da: Driver, db: Driver, a: DaemonHandle, b: DaemonHandle): Promise<void> {
  await da.handshake(b.nodeId, 'failover test');
  await until('pending request', async () =>
    (await db.pending()).some((p) => p.node_id === a.nodeId) ? true : undefined,
  );
  await db.approve(a.nodeId);
  await until('trust', async () => ((await da.trusted()).some((t) => t.node_id === b.nodeId) ? true : undefined));
}

/** What must survive: nodes, trust claims and scores, read from the database itself. */
async function durable(url: string): Promise<{ nodes: string; claims: string }> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const nodes = await client.query('SELECT id, public_key, polo_score, registered FROM nodes ORDER BY id');
    const claims = await client.query(
      'SELECT from_id::int AS from_id, to_id::int AS to_id FROM trust_claims ORDER BY from_id, to_id',
    );
    return { nodes: JSON.stringify(nodes.rows), claims: JSON.stringify(claims.rows) };
  } finally {
    await client.end();
  }
}

const kind = postgresCluster(2);

describe('two registry processes on PostgreSQL: one killed with SIGKILL under load', {
  skip: kind.skip ?? false,
}, () => {
  let cluster: Cluster;
  let daemons: DaemonHandle[] = [];
  let drivers: Driver[] = [];

  before(async () => {
    cluster = await kind.start({ registryArgs: ['-admin-token', TOKEN] });
    daemons = await Promise.all(['a', 'b', 'c', 'd'].map((n) => cluster.addDaemon(n)));
    drivers = await Promise.all(daemons.map((d) => Driver.connect(d.socket)));
  });
  after(async () => {
    await Promise.all(drivers.map((d) => d.close()));
    await cluster?.stop();
    await kind.stop();
  });

  it('daemons fail over to the other process; no node, trust pair or score is lost', async () => {
    const [a, b, c, d] = daemons as [DaemonHandle, DaemonHandle, DaemonHandle, DaemonHandle];
    const [da, db, dc, dd] = drivers as [Driver, Driver, Driver, Driver];
    await makeTrust(da, db, a, b);
    await makeTrust(dc, dd, c, d);
    const admin = await RawConn.open(cluster.balancer?.port ?? 0);
    for (const [node, delta] of [
      [a.nodeId, 5],
      [c.nodeId, 7],
    ] as const) {
      const reply = await admin.request({ type: 'update_polo_score', node_id: node, delta, admin_token: TOKEN });
      assert.equal(reply.type, 'update_polo_score_ok');
    }
    admin.close();
    const url = cluster.opts.store as string;
    const before = await durable(url);

    // Load: lookups on several connections through the balancer, reconnecting when one drops; kept under
    // the per-IP request limit, which the daemons (also on 127.0.0.1) share.
    const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
    let stop = false;
    let answered = 0;
    let answeredAfterKill = 0;
    let killed = false;
    const load = async (): Promise<void> => {
      while (!stop) {
        const conn = await RawConn.open(cluster.balancer?.port ?? 0).catch(() => undefined);
        if (conn === undefined) {
          await pause(50);
          continue;
        }
        while (!stop && !conn.closed) {
          const reply = await conn.request({ type: 'lookup', node_id: a.nodeId }).catch(() => undefined);
          if (reply?.type === 'lookup_ok') {
            answered++;
            if (killed) answeredAfterKill++;
          }
          await pause(40);
        }
        conn.close();
      }
    };
    const workers = Array.from({ length: 4 }, () => load());
    await until('load running', async () => (answered > 200 ? true : undefined));
    const victim = cluster.registries[0];
    assert.ok(victim !== undefined);
    victim.child.kill('SIGKILL');
    killed = true;
    await until('lookups answered by the survivor', async () => (answeredAfterKill > 200 ? true : undefined), 15_000);
    stop = true;
    await Promise.all(workers);

    // A handshake after the failover is delivered and approved: push, poll and trust go through the survivor.
    await makeTrust(da, dc, a, c);
    const survivor = await RawConn.open(cluster.balancer?.port ?? 0);
    const listed = await survivor.request({ type: 'list_nodes', network_id: 0 });
    const online = ((listed.nodes as JsonObject[]) ?? []).map((n) => n.node_id);
    for (const dmn of daemons) assert.ok(online.includes(dmn.nodeId), `node ${dmn.nodeId} online after failover`);
    const score = await survivor.request({ type: 'get_polo_score', node_id: c.nodeId });
    assert.equal(score.polo_score, 7);
    survivor.close();

    const afterKill = await durable(url);
    assert.equal(afterKill.nodes, before.nodes, 'nodes and scores unchanged');
    type Claim = { from_id: number; to_id: number };
    const has = (claims: Claim[], from: number, to: number): boolean =>
      claims.some((cl) => cl.from_id === from && cl.to_id === to);
    for (const pair of JSON.parse(before.claims) as Claim[])
      assert.ok(has(JSON.parse(afterKill.claims) as Claim[], pair.from_id, pair.to_id), 'trust claim kept');
    // The daemons report the new pair to the registry (the survivor) on their own time.
    await until('the pair made after the failover reaches the store', async () => {
      const claims = JSON.parse((await durable(url)).claims) as Claim[];
      return has(claims, a.nodeId, c.nodeId) && has(claims, c.nodeId, a.nodeId) ? true : undefined;
    });
    assert.ok((await da.trusted()).some((t) => t.node_id === b.nodeId));
  });
});
