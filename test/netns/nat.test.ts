/**
 * The NAT lab (test/netns/lab.ts): every pair of agents behind public, full-cone, restricted,
 * port-restricted and symmetric NATs connects (trust, ping, a 4 MiB bench, a stdio exchange), directly
 * except symmetric↔symmetric and symmetric↔port-restricted; NAT detection; a relayed pair moves to
 * the direct path under a running bench; rebinding. Skips with one line where it cannot run.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { labSkipReason, NatLab, type NatKind } from './lab.js';
import Database from 'better-sqlite3';
import { bench, expectedPath, LAB_AGENTS, labPairs, pathOf, runPairs, trustPair, type PairResult } from './pairs.js';

const dist = process.env.PILOT_LAB_DIST ?? join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist');
const skip = await labSkipReason();
if (skip) process.stdout.write(`${skip}\n`);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The rebinding test's pair: a full-cone agent whose public address changes, a port-restricted peer. */
const REBIND_AGENTS = [
  { name: 'rebind', kind: 'fullcone' },
  { name: 'rebindpeer', kind: 'portrestricted' },
] as const;

/** The endpoint the registry stores for a node (read from its SQLite store). */
function registryEndpoint(lab: NatLab, node: number): string {
  const db = new Database(join(lab.dir, 'registry.db'), { readonly: true, fileMustExist: true });
  try {
    const row = db.prepare('SELECT real_addr FROM nodes WHERE id = ?').get(node) as { real_addr: string } | undefined;
    return row?.real_addr ?? '';
  } finally {
    db.close();
  }
}

describe('NAT lab', { skip: skip ?? false, timeout: 240_000 }, () => {
  let lab: NatLab;
  before(async () => {
    lab = await NatLab.start({
      dist,
      agents: [
        ...LAB_AGENTS,
        { name: 'fullcone2', kind: 'fullcone' },
        { name: 'restricted2', kind: 'restricted' },
        ...REBIND_AGENTS,
      ],
    });
  });
  after(async () => {
    await lab?.stop();
  });

  test('each daemon detects the NAT in front of it (info nat)', async () => {
    const want: Record<NatKind, string> = {
      public: 'none',
      fullcone: 'full-cone',
      restricted: 'restricted-cone',
      portrestricted: 'port-restricted-cone',
      symmetric: 'symmetric',
    };
    for (const a of lab.agents.values()) {
      let nat: Record<string, unknown> = {};
      for (let i = 0; i < 40; i++) {
        nat = (await lab.ctl(a.name, ['info'])).nat as Record<string, unknown>;
        if (nat.type !== 'unknown') break;
        await sleep(250);
      }
      assert.equal(nat.type, want[a.kind], `${a.name}: ${JSON.stringify(nat)}`);
      assert.equal(nat.registered_endpoint, nat.public_endpoint, `${a.name} registered what the beacon saw`);
      assert.match(String(nat.public_endpoint), new RegExp(`^${a.publicIp.replace(/\./g, '\\.')}:\\d+$`));
    }
    const text = await lab.ctlRaw('symmetric', ['info']);
    assert.match(text.stdout, /^nat\s+symmetric \(mapping endpoint-dependent/m);
  });

  test('every pair connects: direct, except symmetric with symmetric or port-restricted (relay)', async () => {
    const results: PairResult[] = await runPairs(lab, labPairs());
    const lines = results.map(
      (r) => `${r.a}↔${r.b} ${r.path} ttfb ${r.ttfb_ms} ms ${r.goodput_MBps} MB/s${r.error ? ` ${r.error}` : ''}`,
    );
    process.stdout.write(`${lines.join('\n')}\n`);
    for (const r of results) {
      assert.ok(r.connected && r.ping_ok && r.bench_ok && r.stdio_ok, `${r.a}↔${r.b}: ${r.error ?? 'incomplete'}`);
      assert.equal(r.path, expectedPath(r.kindA, r.kindB), `${r.a}↔${r.b} path`);
    }
    const peers = await lab.ctlRaw('symmetric', ['peers']);
    assert.match(peers.stdout, /PATH/);
    assert.match(peers.stdout, /\brelay\b/);
    assert.match(peers.stdout, /\bdirect\b/);
  });

  test('a pair relayed while the direct path is blocked moves to it under a running bench, byte-exact', async () => {
    // fullcone2 ↔ restricted2: drop their traffic to each other at the full-cone router until the bench runs.
    const fc = lab.agent('fullcone2');
    const rc = lab.agent('restricted2');
    await lab.nft('fullcone2', ['insert', 'rule', 'ip', 'lab', 'filter_fwd', 'ip', 'daddr', rc.publicIp, 'drop']);
    await lab.nft('fullcone2', [
      'add',
      'chain',
      'ip',
      'lab',
      'block_in',
      '{ type filter hook prerouting priority -300; policy accept; }',
    ]);
    await lab.nft('fullcone2', ['add', 'rule', 'ip', 'lab', 'block_in', 'ip', 'saddr', rc.publicIp, 'drop']);
    await trustPair(lab, 'fullcone2', 'restricted2');
    await lab.ctl('fullcone2', ['ping', String(rc.nodeId), '--count', '1', '--timeout', '30s']);
    assert.equal(await pathOf(lab, 'fullcone2', 'restricted2'), 'relay');
    const running = bench(lab, 'fullcone2', 'restricted2', 16);
    await sleep(1000);
    // Unblock (rule handles are not needed: the chain goes, and the forward rule is the first one).
    await lab.nft('fullcone2', ['delete', 'chain', 'ip', 'lab', 'block_in']).catch(() => undefined);
    await lab.nft('fullcone2', ['flush', 'chain', 'ip', 'lab', 'filter_fwd']);
    await lab.nft('fullcone2', [
      'add',
      'rule',
      'ip',
      'lab',
      'filter_fwd',
      'iifname',
      '"lan"',
      'oifname',
      '"wan"',
      'accept',
    ]);
    await lab.nft('fullcone2', [
      'add',
      'rule',
      'ip',
      'lab',
      'filter_fwd',
      'ct',
      'state',
      'established,related',
      'accept',
    ]);
    await lab.nft('fullcone2', ['add', 'rule', 'ip', 'lab', 'filter_fwd', 'ct', 'status', 'dnat', 'accept']);
    const goodput = await running; // throws unless every byte came back
    assert.ok(goodput > 0);
    let path = 'relay';
    for (let i = 0; i < 40 && path !== 'direct'; i++) {
      path = await pathOf(lab, 'fullcone2', 'restricted2');
      if (path !== 'direct') await sleep(250);
    }
    assert.equal(path, 'direct');
    void fc;
  });

  test('rebinding: an agent whose public address changes mid-run keeps its connections, registers the new endpoint and is reached afresh', async () => {
    const A = lab.agent('rebind');
    const B = lab.agent('rebindpeer');
    await trustPair(lab, 'rebindpeer', 'rebind');
    await lab.ctl('rebindpeer', ['ping', String(A.nodeId), '--count', '1', '--timeout', '30s']);
    assert.equal(await pathOf(lab, 'rebindpeer', 'rebind'), 'direct');
    const oldIp = A.publicIp;
    const oldEndpoint = String(((await lab.ctl('rebind', ['info'])).nat as Record<string, unknown>).public_endpoint);
    assert.match(oldEndpoint, new RegExp(`^${oldIp.replace(/\./g, '\\.')}:`));
    assert.equal(registryEndpoint(lab, A.nodeId), oldEndpoint);

    // A bench (64 MiB, one stream) from the peer and pings (a new stream each) from the agent, across the change.
    const started = Date.now();
    let benchDoneAt = 0;
    const running = bench(lab, 'rebindpeer', 'rebind', 64, '60s').then((g) => {
      benchDoneAt = Date.now();
      return g;
    });
    const pinging = lab.ctl(
      'rebind',
      ['ping', String(B.nodeId), '--count', '30', '--interval', '200ms', '--timeout', '60s'],
      undefined,
      90_000,
    );
    await sleep(1000);
    const newIp = `198.18.0.${Number(oldIp.split('.')[3]) + 100}`;
    const changedAt = Date.now();
    if (process.env.PILOT_LAB_DEBUG) process.stdout.write(`change at ${new Date(changedAt).toISOString()}\n`);
    await lab.renumber('rebind', newIp);

    // The agent learns its new endpoint from the beacon and registers it.
    let seenAfterMs = -1;
    let nat: Record<string, unknown> = {};
    for (let i = 0; i < 120; i++) {
      nat = (await lab.ctl('rebind', ['info'])).nat as Record<string, unknown>;
      if (String(nat.public_endpoint).startsWith(`${newIp}:`) && nat.registered_endpoint === nat.public_endpoint) {
        seenAfterMs = Date.now() - changedAt;
        break;
      }
      await sleep(250);
    }
    assert.ok(seenAfterMs >= 0, `info never showed the new endpoint: ${JSON.stringify(nat)}`);
    const newEndpoint = String(nat.public_endpoint);
    let registered = '';
    for (let i = 0; i < 40 && registered !== newEndpoint; i++) {
      registered = registryEndpoint(lab, A.nodeId);
      if (registered !== newEndpoint) await sleep(250);
    }
    assert.equal(registered, newEndpoint, 'the registry holds the new endpoint');

    const goodput = await running; // throws unless all 16 MiB came back
    const pings = (await pinging).results as { rtt_ms?: number; error?: string }[];
    const failed = pings.filter((p) => p.error !== undefined);
    const worst = Math.max(...pings.map((p) => p.rtt_ms ?? 0));
    process.stdout.write(
      `rebinding: ${oldEndpoint} → ${newEndpoint} seen and registered after ${seenAfterMs} ms; bench of 64 MiB completed ${benchDoneAt - changedAt} ms after the change (${goodput} MB/s over ${benchDoneAt - started} ms); ${pings.length} pings, ${failed.length} failed, slowest ${Math.round(worst)} ms\n`,
    );
    if (process.env.PILOT_LAB_DEBUG)
      for (const n of ['rebind', 'rebindpeer'])
        process.stdout.write(
          `${lab
            .logOf(n)
            .split('\n')
            .filter((l) => /endpoint|silent|relay|direct|checking/.test(l))
            .join('\n')}\n`,
        );
    assert.equal(failed.length, 0, `pings failed: ${JSON.stringify(failed)}`);
    assert.ok(worst < 8000, `pings resumed only after ${worst} ms`);

    // Both sides settle on the direct path again, and the peer follows the new endpoint.
    let peerEndpoint = '';
    for (let i = 0; i < 60; i++) {
      const info = await lab.ctl('rebindpeer', ['info']);
      const p = (info.peer_list as { node_id: number; relay: boolean; endpoint: string }[]).find(
        (x) => x.node_id === A.nodeId,
      );
      peerEndpoint = p && !p.relay ? p.endpoint : '';
      if (peerEndpoint === newEndpoint) break;
      await sleep(250);
    }
    assert.equal(peerEndpoint, newEndpoint, 'the peer sends to the new endpoint, directly');

    // A node that never spoke to the agent resolves it at the registry and reaches it directly.
    await trustPair(lab, 'public', 'rebind');
    await lab.ctl('public', ['ping', String(A.nodeId), '--count', '2', '--interval', '100ms', '--timeout', '20s']);
    assert.equal(await pathOf(lab, 'public', 'rebind'), 'direct');
    const fresh = (await lab.ctl('public', ['info'])).peer_list as { node_id: number; endpoint: string }[];
    assert.equal(fresh.find((x) => x.node_id === A.nodeId)?.endpoint, newEndpoint);
  });
});
