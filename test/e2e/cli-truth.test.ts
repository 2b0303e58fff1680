import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ctl, errorEnvelope, freePort, killPids, okData, pidAlive, readPidFile, type AgentEnv } from './cli-harness.js';
import { until } from '../wait.js';

/**
 * A new user's first steps with real processes: a registry on a port of their choosing, a
 * restart without flags, a daemon killed with -9, an unknown connection id.
 */

/** True when the UDP port on loopback is in use. */
function udpTaken(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createSocket('udp4');
    sock.once('error', () => resolve(true));
    sock.bind(port, '127.0.0.1', () => sock.close(() => resolve(false)));
  });
}

/** A TCP port P with UDP P+1 free too: the registry and its beacon. */
async function registryPort(): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const p = await freePort('tcp');
    if (p < 65535 && !(await udpTaken(p + 1))) return p;
  }
  throw new Error('no free port pair');
}

describe('pilotctl truth: a registry on its own port, restart, kill -9', () => {
  let dir: string;
  let agent: AgentEnv;
  let port = 0;
  const pids = new Set<number>();

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pilot-cli-truth-'));
    port = await registryPort();
    const home = join(dir, 'carol');
    const socket = join(dir, 'carol.sock');
    // No PILOT_REGISTRY / PILOT_BEACON: only the flags of the first start say where the network is.
    agent = {
      name: 'carol',
      home,
      socket,
      env: { PILOT_HOME: home, PILOT_SOCKET: socket, PILOT_REGISTRY: '', PILOT_BEACON: '' },
    };
  });

  after(async () => {
    for (const file of ['pilot.pid', 'rendezvous.pid']) {
      const pid = await readPidFile(join(agent.home, file));
      if (pid !== undefined) pids.add(pid);
    }
    await killPids(pids);
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('daemon start --registry 127.0.0.1:P without --beacon: the local rendezvous serves its beacon on P+1, and the flags are remembered', async () => {
    const registry = `127.0.0.1:${port}`;
    const beacon = `127.0.0.1:${port + 1}`;
    const first = await ctl(agent, ['daemon', 'start', '--registry', registry]);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, new RegExp(`beacon ${beacon.replaceAll('.', '\\.')} \\(registry port \\+ 1`));
    const rendezvousPid = await readPidFile(join(agent.home, 'rendezvous.pid'));
    assert.ok(rendezvousPid !== undefined);
    pids.add(rendezvousPid);
    const cmdline = (await readFile(`/proc/${rendezvousPid}/cmdline`, 'utf8')).split('\0');
    assert.equal(
      cmdline[cmdline.indexOf('-beacon-addr') + 1],
      beacon,
      'the rendezvous beacon is on the registry port + 1',
    );
    assert.equal(await udpTaken(port + 1), true, 'and listening there');
    const config = JSON.parse(await readFile(join(agent.home, 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(config.registry, registry);
    assert.equal(config.beacon, beacon);
    const firstStatus = okData(await ctl(agent, ['daemon', 'status', '--json']));
    const nodeId = firstStatus.node_id;

    okData(await ctl(agent, ['daemon', 'stop', '--json']));
    const again = okData(await ctl(agent, ['daemon', 'start', '--json']));
    pids.add(again.pid as number);
    assert.equal(again.registry, registry, 'a plain restart joins the same registry');
    assert.equal(again.beacon, beacon);
    assert.deepEqual(again.remembered, []);
    assert.equal(again.node_id, nodeId, 'same identity, same registry: same node');
  });

  it('config shows the registry, beacon and socket in effect', async () => {
    const cfg = okData(await ctl(agent, ['config', '--json']));
    assert.equal(cfg.registry, `127.0.0.1:${port}`);
    assert.equal(cfg.beacon, `127.0.0.1:${port + 1}`);
    assert.equal(cfg.socket, agent.socket);
    assert.deepEqual(cfg.sources, { beacon: 'config.json', registry: 'config.json', socket: 'PILOT_SOCKET' });
  });

  it('disconnect of an unknown connection id is not_found', async () => {
    const err = errorEnvelope(await ctl(agent, ['disconnect', '9999', '--json']));
    assert.equal(err.code, 'not_found');
    const text = await ctl(agent, ['disconnect', '9999']);
    assert.equal(text.code, 1);
    assert.doesNotMatch(text.stdout, /closed/);
  });

  it('after kill -9 of the daemon: "stale socket", not "no socket"; a new start cleans up', async () => {
    const pid = await readPidFile(join(agent.home, 'pilot.pid'));
    assert.ok(pid !== undefined);
    process.kill(pid, 'SIGKILL');
    await until('the daemon is gone', async () => (pidAlive(pid) ? undefined : true));
    assert.ok((await stat(agent.socket)).isSocket(), 'the socket file is left behind');
    const info = errorEnvelope(await ctl(agent, ['info', '--json']));
    assert.equal(info.code, 'not_running');
    assert.match(info.message, /stale socket/);
    assert.doesNotMatch(info.message, /no socket at/);
    const status = okData(await ctl(agent, ['daemon', 'status', '--json']));
    assert.equal(status.stale_socket, true);
    assert.equal(status.running, false);
    const restarted = okData(await ctl(agent, ['daemon', 'start', '--json']));
    pids.add(restarted.pid as number);
    assert.equal(restarted.registry, `127.0.0.1:${port}`);
    okData(await ctl(agent, ['daemon', 'stop', '--all', '--json']));
  });
});
