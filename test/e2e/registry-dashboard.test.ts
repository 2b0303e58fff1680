import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Identity } from '../../src/crypto/identity.js';
import { RegistryClient } from '../../src/registry/client.js';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DashboardStats } from '../../src/registry/dashboard.js';
import type { HistoryJson } from '../../src/registry/dashboard-history.js';
import type { RegistryStats } from '../../src/registry/stats.js';
import { spawnBin, stopProcess, type Spawned } from './cluster.js';
import { parsePrometheus } from './registry-dashboard-helpers.js';
import { RawConn, rawHttp } from './registry-helpers.js';

const DASHBOARD_LINE = /^dashboard listening on http:\/\/127\.0\.0\.1:(\d+)$/;

const addr = (id: number): string => `0:0000.0000.${id.toString(16).toUpperCase().padStart(4, '0')}`;

describe('registry dashboard (pilot-rendezvous -http)', () => {
  let dir = '';
  let rdv: Spawned;
  let registryPort = 0;
  let base = '';
  const clients: RegistryClient[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pilot-dashboard-'));
    rdv = spawnBin(
      'pilot-rendezvous',
      [
        '-registry-addr',
        '127.0.0.1:0',
        '-beacon-addr',
        '127.0.0.1:0',
        '-store',
        join(dir, 'registry.db'),
        '-http',
        '127.0.0.1:0',
        '-log-level',
        'warn',
      ],
      { PILOT_HOME: dir },
    );
    registryPort = Number((await rdv.waitFor(/^registry listening on .*:(\d+)$/))[1]);
    base = `http://127.0.0.1:${(await rdv.waitFor(DASHBOARD_LINE))[1]}`;
  });
  after(async () => {
    for (const c of clients) c.close();
    await stopProcess(rdv.child, 'SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });

  const client = async (): Promise<RegistryClient> => {
    const c = new RegistryClient({
      address: `127.0.0.1:${registryPort}`,
      identity: Identity.generate(),
      timeoutMs: 5000,
    });
    clients.push(c);
    await c.register({ listenAddr: '127.0.0.1:4000' });
    return c;
  };

  it('publishes counts for everyone but lists only public nodes and their trust', async () => {
    const alice = await client();
    const bob = await client();
    const carol = await client();
    const [a, b, c] = [alice.nodeId, bob.nodeId, carol.nodeId] as number[];
    await alice.setVisibility(true);
    await alice.setHostname('alice-gpu');
    await bob.setHostname('bob-private');
    await alice.setTags(['ml', 'gpu']);
    await alice.setTaskExec(true);
    await bob.setTags(['private-only']);
    await carol.setVisibility(true);
    await alice.reportTrust(c as number);
    await carol.reportTrust(a as number);
    await alice.reportTrust(b as number);
    await bob.reportTrust(a as number);
    const raw = await RawConn.open(registryPort);
    assert.equal((await raw.request({ type: 'no_such_request' })).type, 'error');
    raw.close();

    const res = await fetch(`${base}/api/stats`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('access-control-allow-origin'), '*');
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    const stats = (await res.json()) as RegistryStats;
    assert.deepEqual(Object.keys(stats), [
      'total_nodes',
      'active_nodes',
      'total_trust_links',
      'total_requests',
      'unique_tags',
      'task_executors',
      'networks',
      'nodes',
      'edges',
      'uptime_secs',
      'handshakes_relayed',
    ]);
    assert.equal(stats.total_nodes, 3);
    assert.equal(stats.active_nodes, 3);
    assert.equal(stats.total_trust_links, 2);
    assert.equal(stats.total_requests, 3 + 7 + 4 + 1, 'registers, settings, trust reports and the unknown one');
    assert.equal(stats.unique_tags, 3);
    assert.equal(stats.task_executors, 1);
    assert.deepEqual(stats.networks, [{ id: 0, name: 'backbone', members: 3, online_members: 3 }]);
    assert.deepEqual(stats.nodes, [
      {
        address: addr(a as number),
        tags: ['ml', 'gpu'],
        online: true,
        trust_links: 2,
        task_exec: true,
        polo_score: 0,
        hostname: 'alice-gpu',
      },
      {
        address: addr(c as number),
        tags: [],
        online: true,
        trust_links: 1,
        task_exec: false,
        polo_score: 0,
        hostname: '',
      },
    ]);
    assert.deepEqual(stats.edges, [{ source: addr(a as number), target: addr(c as number) }]);
    assert.ok(Number.isInteger(stats.uptime_secs) && stats.uptime_secs >= 0);
    const json = JSON.stringify(stats);
    for (const secret of [addr(b as number), 'private-only', 'bob-private'])
      assert.ok(!json.includes(secret), `nothing about the private node: ${secret}`);
  });

  it('serves the page and the badges', async () => {
    const page = await fetch(`${base}/`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /^text\/html; charset=utf-8/);
    assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'none'/);
    const html = await page.text();
    assert.match(html, /<title>Pilot registry<\/title>/);
    assert.match(html, /getJson\('api\/stats'\), getJson\('api\/history'\)/);
    for (const id of ['chart-online', 'chart-requests', 'chart-handshakes', 'trust-graph'])
      assert.match(html, new RegExp(`<svg class="chart" id="${id}"`));

    const history = await fetch(`${base}/api/history`);
    assert.equal(history.status, 200);
    assert.equal(history.headers.get('access-control-allow-origin'), '*');
    const { interval_secs, points } = (await history.json()) as HistoryJson;
    assert.equal(interval_secs, 10);
    assert.ok(points.length >= 1 && points.length <= 360, `${points.length} points`);
    assert.deepEqual(Object.keys(points[0] ?? {}), ['t', 'online', 'requests_per_s', 'handshakes_relayed']);
    assert.ok(Math.abs((points[0]?.t ?? 0) - Date.now() / 1000) < 3600);

    const badge = await fetch(`${base}/api/badge/trust`);
    assert.equal(badge.status, 200);
    assert.equal(badge.headers.get('content-type'), 'image/svg+xml');
    const svg = await badge.text();
    assert.match(svg, /aria-label="trust links: 2"/);
  });

  it('counts handshakes relayed through the registry', async () => {
    const [alice, bob] = clients as [RegistryClient, RegistryClient];
    const before = ((await (await fetch(`${base}/api/stats`)).json()) as DashboardStats).handshakes_relayed;
    assert.equal(before, 0);
    await alice.requestHandshake(bob.nodeId as number, 'dashboard test');
    await bob.respondHandshake(alice.nodeId as number, false);
    await assert.rejects(bob.requestHandshake(424242, 'nobody'), 'a refused request is not relayed');
    await sleep(1100); // the statistics are cached for a second
    const after = ((await (await fetch(`${base}/api/stats`)).json()) as DashboardStats).handshakes_relayed;
    assert.equal(after, 2);
  });

  it('serves /metrics to a loopback client whatever X-Real-IP claims, in Prometheus text', async () => {
    const res = await fetch(`${base}/metrics`, {
      headers: { 'X-Real-IP': '203.0.113.5', 'X-Forwarded-For': '203.0.113.5' },
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const families = parsePrometheus(await res.text());
    const value = (name: string, labels: Record<string, string> = {}): number | undefined =>
      families.get(name)?.samples.find((s) => JSON.stringify(s.labels) === JSON.stringify(labels))?.value;
    assert.equal(value('pilot_registry_nodes'), 3);
    assert.equal(value('pilot_registry_nodes_online'), 3);
    assert.equal(value('pilot_registry_nodes_public'), 2);
    assert.equal(value('pilot_registry_trust_links'), 2);
    assert.equal(value('pilot_registry_handshakes_relayed_total'), 2);
    assert.equal(value('pilot_registry_requests_by_type_total', { type: 'report_trust' }), 4);
    assert.equal(value('pilot_registry_requests_by_type_total', { type: 'request_handshake' }), 2);
    assert.equal(value('pilot_registry_requests_by_type_total', { type: 'unknown' }), 1);
    for (const [name, family] of families) {
      assert.equal(family.type === 'counter', name.endsWith('_total'), `${name} is a ${family.type}`);
      assert.ok(family.help.length > 0, `${name} has help`);
    }
    const byType = families.get('pilot_registry_requests_by_type_total')?.samples ?? [];
    assert.equal(
      value('pilot_registry_requests_total'),
      byType.reduce((sum, s) => sum + s.value, 0),
    );
  });

  it('answers 404 and 405 and survives malformed requests', async () => {
    assert.equal((await fetch(`${base}/debug/pprof/`)).status, 404);
    assert.equal((await fetch(`${base}/api/badge/everything`)).status, 404);
    assert.equal((await fetch(`${base}/favicon.ico`)).status, 204);
    assert.equal((await fetch(`${base}/api/stats`, { method: 'PUT', body: '{}' })).status, 405);
    assert.match(await rawHttp(Number(new URL(base).port), '\x00\x01garbage\r\n\r\n'), /^HTTP\/1\.1 400/);
    assert.match(
      await rawHttp(Number(new URL(base).port), `GET / HTTP/1.1\r\nHost: x\r\nCookie: ${'c'.repeat(64_000)}\r\n\r\n`),
      /^HTTP\/1\.1 431/,
    );
    assert.match(
      await rawHttp(Number(new URL(base).port), 'GET / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n'),
      /^HTTP\/1\.1 400/,
    );
    assert.equal((await fetch(`${base}/api/stats`)).status, 200);
    assert.equal(rdv.child.exitCode, null);
  });

  it('closes the dashboard on SIGTERM', async () => {
    const exited = once(rdv.child, 'exit');
    rdv.child.kill('SIGTERM');
    assert.deepEqual(await exited, [0, null]);
    await assert.rejects(fetch(`${base}/api/stats`));
  });
});

describe('pilot-registry -http', () => {
  it('serves the dashboard next to the registry', async () => {
    const reg = spawnBin('pilot-registry', [
      '-addr',
      '127.0.0.1:0',
      '-store',
      ':memory:',
      '-http',
      '127.0.0.1:0',
      '-log-level',
      'silent',
    ]);
    try {
      await reg.waitFor(/^registry listening on /);
      const base = `http://127.0.0.1:${(await reg.waitFor(DASHBOARD_LINE))[1]}`;
      const stats = (await (await fetch(`${base}/api/stats`)).json()) as RegistryStats;
      assert.equal(stats.total_nodes, 0);
      assert.equal((await fetch(`${base}/metrics`)).status, 200);
    } finally {
      await stopProcess(reg.child);
    }
    assert.equal(reg.child.exitCode, 0);
  });

  it('refuses a malformed -http address with exit code 2', async () => {
    for (const bin of ['pilot-registry', 'pilot-rendezvous']) {
      const proc = spawnBin(bin, ['-store', ':memory:', '-http', '8080']);
      const [code] = (await once(proc.child, 'close')) as [number | null];
      assert.equal(code, 2, bin);
      assert.match(proc.stderr.join('\n'), /invalid -http address "8080"/, bin);
    }
  });
});
