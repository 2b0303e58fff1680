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
import { bench, expectedPath, LAB_AGENTS, labPairs, pathOf, runPairs, trustPair, type PairResult } from './pairs.js';

const dist = process.env.PILOT_LAB_DIST ?? join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist');
const skip = await labSkipReason();
if (skip) process.stdout.write(`${skip}\n`);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('NAT lab', { skip: skip ?? false, timeout: 240_000 }, () => {
  let lab: NatLab;
  before(async () => {
    lab = await NatLab.start({ dist, agents: [...LAB_AGENTS, { name: 'fullcone2', kind: 'fullcone' }, { name: 'restricted2', kind: 'restricted' }] });
  });
  after(async () => {
    await lab?.stop();
  });

  test('each daemon detects the NAT in front of it (info nat)', async () => {
    const want: Record<NatKind, string> = { public: 'none', fullcone: 'full-cone', restricted: 'restricted-cone', portrestricted: 'port-restricted-cone', symmetric: 'symmetric' };
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
    const lines = results.map((r) => `${r.a}↔${r.b} ${r.path} ttfb ${r.ttfb_ms} ms ${r.goodput_MBps} MB/s${r.error ? ` ${r.error}` : ''}`);
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
    await lab.nft('fullcone2', ['add', 'chain', 'ip', 'lab', 'block_in', '{ type filter hook prerouting priority -300; policy accept; }']);
    await lab.nft('fullcone2', ['add', 'rule', 'ip', 'lab', 'block_in', 'ip', 'saddr', rc.publicIp, 'drop']);
    await trustPair(lab, 'fullcone2', 'restricted2');
    await lab.ctl('fullcone2', ['ping', String(rc.nodeId), '--count', '1', '--timeout', '30s']);
    assert.equal(await pathOf(lab, 'fullcone2', 'restricted2'), 'relay');
    const running = bench(lab, 'fullcone2', 'restricted2', 16);
    await sleep(1000);
    // Unblock (rule handles are not needed: the chain goes, and the forward rule is the first one).
    await lab.nft('fullcone2', ['delete', 'chain', 'ip', 'lab', 'block_in']).catch(() => undefined);
    await lab.nft('fullcone2', ['flush', 'chain', 'ip', 'lab', 'filter_fwd']);
    await lab.nft('fullcone2', ['add', 'rule', 'ip', 'lab', 'filter_fwd', 'iifname', '"lan"', 'oifname', '"wan"', 'accept']);
    await lab.nft('fullcone2', ['add', 'rule', 'ip', 'lab', 'filter_fwd', 'ct', 'state', 'established,related', 'accept']);
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
});
