import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Driver } from '../../src/sdk/driver.js';
import type { PilotConn } from '../../src/sdk/types.js';
import { until } from '../wait.js';
import { Cluster, stopProcess, type DaemonHandle } from './cluster.js';
import { makeTrust } from './eventstream-helpers.js';

/**
 * The dials of one IPC client run side by side in the daemon: a dial to a peer that does not
 * answer does not hold up the handshake of the next one, while the replies keep their order (the
 * client matches them by order).
 */
describe('dials of one IPC client', () => {
  let cluster: Cluster;
  let a: DaemonHandle;
  let b: DaemonHandle;
  let c: DaemonHandle;
  const drivers: Driver[] = [];

  before(async () => {
    cluster = await Cluster.start();
    [a, b, c] = await Promise.all([cluster.addDaemon('a'), cluster.addDaemon('b'), cluster.addDaemon('c')]);
    const [da, db, dc] = await Promise.all([a, b, c].map((d) => Driver.connect(d.socket)));
    drivers.push(da as Driver, db as Driver, dc as Driver);
    await makeTrust(da as Driver, db as Driver, a, b);
    await makeTrust(da as Driver, dc as Driver, a, c);
    // A first stream to each opens the tunnels (key exchange), so that later dials are handshakes only.
    for (const peer of [b, c]) (await (da as Driver).dial(peer.address, 7, { timeoutMs: 10_000 })).destroy();
  });

  after(async () => {
    c.proc.child.kill('SIGCONT');
    await Promise.all(drivers.map((d) => d.close().catch(() => undefined)));
    await cluster.stop();
  });

  it('a dial to a silent peer does not hold up the next one; the replies stay in order', async () => {
    const [da, db] = drivers as [Driver, Driver, Driver];
    const listener = await db.listen(6200);
    const accepted: PilotConn[] = [];
    const accepting = (async () => {
      for await (const conn of listener) accepted.push(conn);
    })();
    // c stops answering: its SYNs go unanswered until the dial's timeout.
    c.proc.child.kill('SIGSTOP');
    const settled: string[] = [];
    const started = Date.now();
    const toSilent = da.dial(c.address, 7, { timeoutMs: 3000 }).then(
      (conn) => {
        conn.destroy();
        settled.push('silent: connected');
      },
      (err: Error & { code?: string }) => settled.push(`silent: ${err.code}`),
    );
    const toB = da.dial(b.address, 6200, { timeoutMs: 10_000 }).then((conn) => {
      settled.push('b: connected');
      return conn;
    });
    await until('b accepted the second dial', async () => (accepted.length > 0 ? true : undefined), 2000);
    assert.ok(Date.now() - started < 2500, 'the handshake with b did not wait for the silent dial');
    assert.deepEqual(settled, [], 'no reply yet: the first dial is still waiting');
    const conn = await toB;
    await toSilent;
    assert.deepEqual(settled, ['silent: timeout', 'b: connected'], 'replies in the order of the dials');
    conn.destroy();
    c.proc.child.kill('SIGCONT');
    await listener.close();
    await accepting.catch(() => undefined);
    await stopProcess(c.proc.child);
  });
});
