import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SERVER_NODE_FLAGS } from '../../src/config/node-flags.js';
import { Driver } from '../../src/sdk/driver.js';
import {
  agentEnv,
  ctl,
  errorEnvelope,
  freePort,
  killPids,
  okData,
  pidAlive,
  readPidFile,
  startCtl,
  type AgentEnv,
  type CtlRun,
} from './cli-harness.js';
import { until } from '../wait.js';

/**
 * The README quick start, driven only through `pilotctl`: two agents on one machine, each with its
 * own PILOT_HOME and socket, sharing a registry/beacon address on loopback that nothing serves yet,
 * so the first `daemon start` brings up the local rendezvous and the second joins it.
 */

const keys = (o: unknown): string[] => Object.keys(o as object);

function arrayOf(v: unknown, what: string): Record<string, unknown>[] {
  assert.ok(Array.isArray(v), `${what} is not an array: ${JSON.stringify(v)}`);
  return v as Record<string, unknown>[];
}

describe('pilotctl quick start: two agents on one machine', () => {
  let dir: string;
  let alice: AgentEnv;
  let bob: AgentEnv;
  let aliceId = 0;
  let bobId = 0;
  let bobAddr = '';
  const pids = new Set<number>();
  const background: CtlRun[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pilot-cli-e2e-'));
    const registry = `127.0.0.1:${await freePort('tcp')}`;
    const beacon = `127.0.0.1:${await freePort('udp')}`;
    alice = agentEnv(dir, 'alice', registry, beacon);
    bob = agentEnv(dir, 'bob', registry, beacon);
  });

  after(async () => {
    for (const run of background) run.child.kill('SIGKILL');
    // Every agent home under the test directory (carol's too), with any rendezvous it started.
    const homes =
      dir === undefined
        ? []
        : (await readdir(dir, { withFileTypes: true })).filter((e) => e.isDirectory()).map((e) => join(dir, e.name));
    for (const home of homes) {
      for (const file of ['pilot.pid', 'rendezvous.pid']) {
        const pid = await readPidFile(join(home, file));
        if (pid !== undefined) pids.add(pid);
      }
    }
    await killPids(pids);
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it('daemon start: the first starts the local rendezvous, the second joins it; a second start is refused', async () => {
    const a = okData(await ctl(alice, ['daemon', 'start', '--json']));
    assert.deepEqual(keys(a), [
      'address',
      'beacon',
      'hostname',
      'log_file',
      'node_id',
      'pid',
      'registry',
      'remembered',
      'socket',
    ]);
    assert.deepEqual(a.remembered, [], 'no flags given, nothing stored in config.json');
    assert.equal(a.socket, alice.socket);
    assert.equal(a.log_file, join(alice.home, 'pilot.log'));
    pids.add(a.pid as number);
    const rendezvousPid = await readPidFile(join(alice.home, 'rendezvous.pid'));
    assert.ok(
      rendezvousPid !== undefined && pidAlive(rendezvousPid),
      'the first daemon start records a live rendezvous',
    );
    pids.add(rendezvousPid);
    for (const pid of [a.pid as number, rendezvousPid]) {
      const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
      for (const flag of SERVER_NODE_FLAGS) assert.ok(argv.includes(flag), `process ${pid} runs with ${flag}`);
    }

    const b = okData(await ctl(bob, ['daemon', 'start', '--json']));
    pids.add(b.pid as number);
    assert.equal(
      await readPidFile(join(bob.home, 'rendezvous.pid')),
      undefined,
      'the second start joins the running rendezvous',
    );
    assert.equal(typeof a.node_id, 'number');
    assert.notEqual(a.node_id, b.node_id);
    aliceId = a.node_id as number;
    bobId = b.node_id as number;
    bobAddr = b.address as string;
    assert.match(bobAddr, /^0:0000\.[0-9A-F]{4}\.[0-9A-F]{4}$/);

    const again = errorEnvelope(await ctl(alice, ['daemon', 'start', '--json']));
    assert.equal(again.code, 'already_exists');
  });

  it('info --json is the daemon info object', async () => {
    const info = okData(await ctl(alice, ['info', '--json']));
    assert.equal(info.node_id, aliceId);
    assert.equal(info.encrypt, true);
    assert.equal(typeof info.public_key, 'string');
    for (const k of ['address', 'connections', 'peers', 'uptime_secs', 'peer_list', 'conn_list'])
      assert.ok(k in info, `info has ${k}`);
    assert.deepEqual(keys(info), keys(info).slice().sort(), 'keys are sorted');
  });

  it('set-hostname, then find resolves it from the other agent', async () => {
    assert.deepEqual(okData(await ctl(bob, ['set-hostname', 'bob', '--json'])), { hostname: 'bob', node_id: bobId });
    const found = okData(await ctl(alice, ['find', 'bob', '--json']));
    assert.deepEqual(found, { address: bobAddr, hostname: 'bob', node_id: bobId, public: false });
    assert.equal(errorEnvelope(await ctl(alice, ['find', 'nobody-here', '--json'])).code, 'not_found');
  });

  it('handshake by hostname, pending, approve, trust', async () => {
    assert.deepEqual(okData(await ctl(alice, ['handshake', 'bob', 'why', '--json'])), {
      node_id: bobId,
      status: 'sent',
    });
    const request = await until("the request in bob's pending list", async () => {
      const list = arrayOf(okData(await ctl(bob, ['pending', '--json'])).pending, 'pending');
      return list.find((p) => p.node_id === aliceId);
    });
    assert.deepEqual(
      keys(request).filter((k) => k !== 'hostname'),
      ['justification', 'node_id', 'public_key', 'received_at'],
    );
    assert.equal(request.justification, 'why');

    const sent = arrayOf(okData(await ctl(alice, ['handshakes', '--json'])).outgoing, 'outgoing');
    assert.deepEqual(
      sent.map((o) => [o.node_id, o.state, o.hostname]),
      [[bobId, 'sent', 'bob']],
    );
    assert.deepEqual(okData(await ctl(bob, ['approve', String(aliceId), '--json'])), {
      node_id: aliceId,
      status: 'approved',
    });
    await until('alice learns the request was accepted', async () => {
      const list = arrayOf(okData(await ctl(alice, ['handshakes', '--json'])).outgoing, 'outgoing');
      return list[0]?.state === 'accepted' ? true : undefined;
    });
    const entry = await until('alice trusts bob', async () => {
      const list = arrayOf(okData(await ctl(alice, ['trust', '--json'])).trusted, 'trusted');
      return list.find((t) => t.node_id === bobId);
    });
    assert.deepEqual(keys(entry), ['approved_at', 'hostname', 'mutual', 'network', 'node_id', 'public_key']);
    assert.equal(entry.hostname, 'bob', 'the hostname, from the registry');
    const bobTrust = arrayOf(okData(await ctl(bob, ['trust', '--json'])).trusted, 'trusted');
    assert.ok(
      bobTrust.some((t) => t.node_id === aliceId),
      'bob trusts alice',
    );
    assert.deepEqual(arrayOf(okData(await ctl(bob, ['pending', '--json'])).pending, 'pending'), []);
  });

  it('ping --count 3 --json returns three echoes', async () => {
    const data = okData(await ctl(alice, ['ping', 'bob', '--count', '3', '--json']));
    assert.deepEqual(keys(data), ['results', 'target', 'timeout']);
    assert.equal(data.target, bobAddr, 'the resolved address, as the reference prints it');
    assert.equal(data.timeout, false);
    const results = arrayOf(data.results, 'results');
    assert.equal(results.length, 3);
    results.forEach((r, i) => {
      assert.deepEqual(keys(r), ['bytes', 'rtt_ms', 'seq']);
      assert.equal(r.seq, i);
      assert.equal(r.bytes, `ping-${i}`.length);
      assert.ok(typeof r.rtt_ms === 'number' && r.rtt_ms > 0 && r.rtt_ms < 5000, `rtt ${String(r.rtt_ms)}`);
    });
  });

  it('traceroute --json times the setup and three echoes on one stream', async () => {
    const data = okData(await ctl(alice, ['traceroute', 'bob', '--json']));
    assert.deepEqual(keys(data), ['rtt_samples', 'setup_ms', 'target']);
    assert.equal(data.target, bobAddr, 'the resolved address, as the reference prints it');
    assert.ok(
      typeof data.setup_ms === 'number' && data.setup_ms > 0 && data.setup_ms < 5000,
      `setup ${String(data.setup_ms)}`,
    );
    const samples = arrayOf(data.rtt_samples, 'rtt_samples');
    assert.equal(samples.length, 3);
    samples.forEach((s, i) => {
      assert.deepEqual(keys(s), ['bytes', 'rtt_ms'], JSON.stringify(s));
      assert.equal(s.bytes, `trace-${i}`.length);
    });
    const human = await ctl(alice, ['traceroute', 'bob']);
    assert.equal(human.code, 0);
    assert.match(human.stdout, /setup [\d.]+ ms\n1 {2}0:0000\.0000\.\w+ {2}[\d.]+ ms {2}\(7 bytes\)/);
  });

  it('bench 1 MiB through the echo port', async () => {
    const data = okData(await ctl(alice, ['bench', 'bob', '1', '--json'], { timeoutMs: 60_000 }));
    assert.deepEqual(keys(data), [
      'recv_bytes',
      'send_duration_ms',
      'send_mbps',
      'sent_bytes',
      'target',
      'total_duration_ms',
      'total_mbps',
    ]);
    assert.equal(data.sent_bytes, 1024 * 1024);
    assert.equal(data.recv_bytes, 1024 * 1024);
    assert.equal(data.target, bobAddr, 'the resolved address, as the reference prints it');
    // MiB/s as the reference (whole milliseconds truncated, the rate over the exact duration):
    // Mbit/s would be 8.4 times more.
    for (const [rateKey, msKey] of [
      ['send_mbps', 'send_duration_ms'],
      ['total_mbps', 'total_duration_ms'],
    ] as const) {
      const dur = data[msKey] as number;
      const rate = data[rateKey] as number;
      const oneMibPerSecond = (ms: number): number => 1000 / ms;
      assert.ok(
        rate >= oneMibPerSecond(dur + 1) && rate <= oneMibPerSecond(Math.max(dur, 0.5)),
        `${rateKey} ${rate} for 1 MiB in ${dur} ms is not MiB/s`,
      );
    }
  });

  it('connect --message, and pipe mode from standard input', async () => {
    assert.deepEqual(okData(await ctl(alice, ['connect', 'bob', '7', '--message', 'hi', '--json'])), {
      port: 7,
      response: 'hi',
      sent: 'hi',
      target: bobAddr,
    });
    const piped = await ctl(alice, ['connect', 'bob', '7'], { input: 'data\n' });
    assert.equal(piped.code, 0, piped.stderr);
    assert.equal(piped.stdout, 'data\n');
  });

  it('send to a port where recv is waiting', async () => {
    const portsBefore = okData(await ctl(bob, ['info', '--json'])).ports as number;
    const recv = startCtl(bob, ['recv', '1000', '--timeout', '20s', '--json'], { timeoutMs: 30_000 });
    background.push(recv);
    await until('recv bound port 1000', async () =>
      (okData(await ctl(bob, ['info', '--json'])).ports as number) > portsBefore ? true : undefined,
    );
    const sent = okData(await ctl(alice, ['send', bobAddr, '1000', '--data', 'hello bob', '--json']));
    assert.deepEqual(sent, { port: 1000, response: '', sent: 'hello bob', target: bobAddr });
    const got = okData(await recv.done);
    assert.deepEqual(got, { messages: [{ bytes: 9, data: 'hello bob', port: 1000, seq: 0 }], timeout: false });
  });

  it('listen receives datagrams sent with the SDK, bounded and streaming', async () => {
    const driver = await Driver.connect(alice.socket);
    try {
      const keepSending = async (run: CtlRun, port: number, text: string, seen: () => boolean): Promise<void> => {
        const deadline = Date.now() + 15_000;
        while (run.child.exitCode === null && !seen() && Date.now() < deadline) {
          await driver.sendTo(bobAddr, port, Buffer.from(text));
          await new Promise((r) => setTimeout(r, 150));
        }
      };
      const bounded = startCtl(bob, ['listen', '5000', '--count', '1', '--timeout', '20s', '--json'], {
        timeoutMs: 30_000,
      });
      background.push(bounded);
      await keepSending(bounded, 5000, 'dgram', () => false);
      const data = okData(await bounded.done);
      assert.equal(data.timeout, false);
      const messages = arrayOf(data.messages, 'messages');
      assert.equal(messages.length, 1);
      assert.deepEqual(keys(messages[0]), ['bytes', 'data', 'src_addr', 'src_port']);
      assert.equal(messages[0]?.data, 'dgram');
      assert.equal(messages[0]?.bytes, 5);
      assert.equal(messages[0]?.src_addr, okData(await ctl(alice, ['info', '--json'])).address);

      const stream = startCtl(bob, ['listen', '5001', '--timeout', '20s'], { timeoutMs: 30_000 });
      background.push(stream);
      await keepSending(stream, 5001, 'line', () => stream.stdout().includes('\n'));
      stream.child.kill('SIGTERM');
      await stream.done;
      const first = stream.stdout().split('\n')[0] ?? '';
      const obj = JSON.parse(first) as Record<string, unknown>;
      assert.deepEqual(keys(obj), ['bytes', 'data', 'src_addr', 'src_port']);
      assert.equal(obj.data, 'line');
    } finally {
      await driver.close();
    }
  });

  it('sendto: a datagram from pilotctl reaches listen --count 1 on the other agent', async () => {
    const bounded = startCtl(bob, ['listen', '5002', '--count', '1', '--timeout', '20s', '--json'], {
      timeoutMs: 30_000,
    });
    background.push(bounded);
    let sent: Record<string, unknown> | undefined;
    const deadline = Date.now() + 15_000;
    // Datagrams are not queued for a port nobody listens on yet: send until the listener has one.
    while (bounded.child.exitCode === null && Date.now() < deadline) {
      sent = okData(await ctl(alice, ['sendto', 'bob', '5002', '--data', 'via sendto', '--json']));
      await new Promise((r) => setTimeout(r, 150));
    }
    assert.deepEqual(sent, { bytes: 10, port: 5002, target: bobAddr });
    const data = okData(await bounded.done);
    const messages = arrayOf(data.messages, 'messages');
    assert.equal(messages[0]?.data, 'via sendto');
    assert.equal(messages[0]?.src_addr, okData(await ctl(alice, ['info', '--json'])).address);
  });

  it('Ctrl-C: ping prints its statistics so far and exits 130; a streaming listen exits 130', async () => {
    const ping = startCtl(alice, ['ping', 'bob', '--count', '100', '--interval', '200ms'], { timeoutMs: 40_000 });
    background.push(ping);
    await until('a first echo', async () => (/bytes from/.test(ping.stdout()) ? true : undefined), 20_000);
    ping.child.kill('SIGINT');
    const r = await ping.done;
    assert.equal(r.code, 130, r.stderr);
    assert.match(
      r.stdout,
      /--- bob ping statistics ---\n\d+ sent, \d+ received, [\d.]+% loss, interrupted\nrtt min\/avg\/max = /,
    );

    const listen = startCtl(bob, ['listen', '5003'], { timeoutMs: 30_000 });
    background.push(listen);
    await until(
      'listen prints a datagram',
      async () => {
        await ctl(alice, ['sendto', 'bob', '5003', '--data', 'x']);
        return listen.stdout().includes('\n') ? true : undefined;
      },
      20_000,
    );
    listen.child.kill('SIGINT');
    const l = await listen.done;
    assert.equal(l.code, 130, l.stderr);
    assert.match(l.stdout, /^\{"bytes":1,"data":"x"/);
  });

  it('peers and connections', async () => {
    const peers = okData(await ctl(alice, ['peers', '--json']));
    assert.deepEqual(keys(peers), ['peers', 'total']);
    const list = arrayOf(peers.peers, 'peers');
    assert.equal(peers.total, list.length);
    const bobPeer = list.find((p) => p.node_id === bobId);
    assert.ok(bobPeer !== undefined, 'bob is a peer');
    assert.equal(bobPeer.encrypted, true);
    assert.equal(bobPeer.authenticated, true);
    assert.deepEqual(okData(await ctl(alice, ['peers', '--search', 'no-such-peer', '--json'])), {
      peers: null,
      total: 0,
    });

    const conns = okData(await ctl(alice, ['connections', '--json']));
    assert.deepEqual(keys(conns), ['connections', 'total']);
    assert.equal(conns.total, arrayOf(conns.connections, 'connections').length);
  });

  it('bad input: --json error envelopes and exit status 2', async () => {
    assert.equal(errorEnvelope(await ctl(alice, ['ping', '0:zzzz', '--json']), 2).code, 'invalid_argument');
    assert.equal(
      errorEnvelope(await ctl(alice, ['connect', 'bob', '99999', '--message', 'x', '--json']), 2).code,
      'invalid_argument',
    );
    assert.equal(errorEnvelope(await ctl(alice, ['send', 'bob', '1000', '--json']), 2).code, 'invalid_argument');
    assert.equal(errorEnvelope(await ctl(alice, ['frobnicate', '--json']), 2).code, 'invalid_argument');
    const plain = await ctl(alice, ['frobnicate']);
    assert.equal(plain.code, 2);
    assert.match(plain.stderr, /^error: unknown command "frobnicate"/);
    assert.match(plain.stderr, /usage: pilotctl/);
    const none = await ctl(alice, []);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /usage: pilotctl/);
  });

  it('daemon status --json', async () => {
    const status = okData(await ctl(alice, ['daemon', 'status', '--json']));
    assert.equal(status.running, true);
    assert.equal(status.responsive, true);
    assert.equal(status.node_id, aliceId);
    assert.equal(status.socket, alice.socket);
    assert.equal(status.pid, await readPidFile(join(alice.home, 'pilot.pid')));
    assert.equal((await ctl(bob, ['daemon', 'status', '--check'])).code, 0);
  });

  it('a rejected request is learnt by the requester (handshakes)', async () => {
    const carol = agentEnv(dir, 'carol', alice.env.PILOT_REGISTRY as string, alice.env.PILOT_BEACON as string);
    const c = okData(await ctl(carol, ['daemon', 'start', '--json']));
    pids.add(c.pid as number);
    await ctl(carol, ['handshake', String(aliceId), 'let me in', '--json']);
    await until('the request at alice', async () => {
      const list = arrayOf(okData(await ctl(alice, ['pending', '--json'])).pending, 'pending');
      return list.some((p) => p.node_id === c.node_id) ? true : undefined;
    });
    assert.deepEqual(okData(await ctl(alice, ['reject', String(c.node_id), 'not now', '--json'])), {
      node_id: c.node_id,
      status: 'rejected',
    });
    const entry = await until('carol learns of the rejection', async () => {
      const list = arrayOf(okData(await ctl(carol, ['handshakes', '--json'])).outgoing, 'outgoing');
      return list.find((o) => o.node_id === aliceId && o.state === 'rejected');
    });
    assert.equal(typeof entry.answered_at, 'number');
    const log = await readFile(join(carol.home, 'pilot.log'), 'utf8');
    assert.match(log, /handshake\.rejected_by_peer/, 'logged (and posted to a webhook, were one set)');
  });
  it('daemon stop --all stops both daemons and the rendezvous, leaving no process', async () => {
    const alicePid = await readPidFile(join(alice.home, 'pilot.pid'));
    const bobPid = await readPidFile(join(bob.home, 'pilot.pid'));
    const rendezvousPid = await readPidFile(join(alice.home, 'rendezvous.pid'));
    assert.ok(alicePid !== undefined && bobPid !== undefined && rendezvousPid !== undefined);

    assert.deepEqual(okData(await ctl(bob, ['daemon', 'stop', '--all', '--json'])), { pid: bobPid });
    assert.deepEqual(okData(await ctl(alice, ['daemon', 'stop', '--all', '--json'])), {
      pid: alicePid,
      rendezvous: { pid: rendezvousPid },
    });
    for (const pid of [alicePid, bobPid, rendezvousPid]) assert.equal(pidAlive(pid), false, `pid ${pid} is gone`);

    const status = okData(await ctl(alice, ['daemon', 'status', '--json']));
    assert.equal(status.running, false);
    assert.equal(status.responsive, false);
    assert.equal((await ctl(bob, ['daemon', 'status', '--check'])).code, 1);
    assert.equal(errorEnvelope(await ctl(alice, ['daemon', 'stop', '--json'])).code, 'not_running');
    assert.equal(errorEnvelope(await ctl(alice, ['info', '--json'])).code, 'not_running');
  });
});
