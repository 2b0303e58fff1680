import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { setImmediate as tick } from 'node:timers/promises';
import { runInNewContext } from 'node:vm';
import { after, before, describe, it } from 'node:test';
import { formatCount, renderBadge } from '../../src/registry/dashboard-badge.js';
import { isLocalRequest, isLoopbackAddress, renderMetrics } from '../../src/registry/dashboard-metrics.js';
import { DASHBOARD_CSP, DASHBOARD_HTML } from '../../src/registry/dashboard-page.js';
import { parseDashboardAddress, startDashboard, type Dashboard } from '../../src/registry/dashboard.js';
import { RegistryServer } from '../../src/registry/server.js';
import type { RegistryStats } from '../../src/registry/stats.js';
import { rawHttp } from '../e2e/registry-helpers.js';

const SAMPLE: RegistryStats = {
  total_nodes: 3,
  active_nodes: 2,
  total_trust_links: 1,
  total_requests: 1500,
  unique_tags: 2,
  task_executors: 1,
  networks: [{ id: 0, name: 'backbone', members: 3, online_members: 2 }],
  nodes: [
    {
      address: '0:0000.0000.0001',
      tags: ['<img src=x onerror=alert(1)>'],
      online: true,
      trust_links: 1,
      task_exec: true,
      polo_score: 4,
      hostname: 'alpha',
    },
  ],
  edges: [],
  uptime_secs: 3725,
};

describe('dashboard /metrics locality', () => {
  it('accepts loopback peers only, in every spelling', () => {
    for (const ip of ['127.0.0.1', '127.255.0.9', '::1', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1', '::ffff:7f00:2'])
      assert.ok(isLoopbackAddress(ip), ip);
    for (const ip of [
      '10.0.0.1',
      '203.0.113.5',
      '128.0.0.1',
      '::2',
      '::ffff:10.0.0.1',
      'fe80::1',
      'localhost',
      '',
      undefined,
    ])
      assert.ok(!isLoopbackAddress(ip), String(ip));
  });

  it('ignores X-Real-IP and X-Forwarded-For both ways', () => {
    const forged = { 'x-real-ip': '127.0.0.1', 'x-forwarded-for': '127.0.0.1', forwarded: 'for=127.0.0.1' };
    assert.equal(isLocalRequest({ socket: { remoteAddress: '203.0.113.5' }, headers: forged }), false);
    assert.equal(isLocalRequest({ socket: { remoteAddress: '::ffff:198.51.100.7' }, headers: forged }), false);
    assert.equal(isLocalRequest({ socket: {}, headers: forged }), false);
    assert.equal(
      isLocalRequest({ socket: { remoteAddress: '127.0.0.1' }, headers: { 'x-real-ip': '203.0.113.5' } }),
      true,
    );
  });
});

describe('dashboard rendering', () => {
  it('parses -http addresses and refuses malformed ones', () => {
    assert.deepEqual(parseDashboardAddress('127.0.0.1:8080'), { host: '127.0.0.1', port: 8080 });
    assert.deepEqual(parseDashboardAddress(':8080'), { host: '', port: 8080 });
    assert.deepEqual(parseDashboardAddress('[::1]:0'), { host: '::1', port: 0 });
    assert.deepEqual(parseDashboardAddress('localhost:9090'), { host: 'localhost', port: 9090 });
    for (const bad of ['8080', '127.0.0.1', '127.0.0.1:70000', 'host name:80', '127.0.0.1:-1', 'a/b:80', '']) {
      assert.throws(() => parseDashboardAddress(bad), { code: 'invalid_argument' }, bad);
    }
  });

  it('writes Prometheus text with escaped label values', () => {
    const text = renderMetrics(
      SAMPLE,
      new Map([
        ['heartbeat', 7],
        ['we"ird\\', 2],
      ]),
      5,
    );
    assert.match(text, /^# TYPE pilot_registry_nodes gauge\npilot_registry_nodes 3$/m);
    assert.match(text, /^pilot_registry_nodes_online 2$/m);
    assert.match(text, /^pilot_registry_nodes_public 1$/m);
    assert.match(text, /^pilot_registry_trust_links 1$/m);
    assert.match(text, /^# TYPE pilot_registry_requests_total counter\npilot_registry_requests_total 9$/m);
    assert.match(text, /^pilot_registry_requests_by_type_total\{type="heartbeat"\} 7$/m);
    assert.ok(text.includes('pilot_registry_requests_by_type_total{type="we\\"ird\\\\"} 2\n'));
    assert.match(text, /^pilot_registry_handshakes_relayed_total 5$/m);
    assert.match(text, /^pilot_registry_uptime_seconds 3725\n$/m);
  });

  it('formats badge values and escapes badge text', () => {
    assert.deepEqual([0, 999, 1000, 1500, 2_345_678, 3e9].map(formatCount), [
      '0',
      '999',
      '1.0K',
      '1.5K',
      '2.3M',
      '3.0B',
    ]);
    const svg = renderBadge({ label: 'a<b>&"', value: '1', color: '#fff' });
    assert.ok(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"'));
    assert.ok(!svg.includes('<b>'));
    assert.ok(svg.includes('a&#60;b&#62;&#38;&#34;'));
  });

  it('allows exactly the page’s own script and style in its CSP', () => {
    const hash = (text: string): string => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;
    const script = /<script>([\s\S]*)<\/script>/.exec(DASHBOARD_HTML)?.[1] ?? '';
    const style = /<style>([\s\S]*)<\/style>/.exec(DASHBOARD_HTML)?.[1] ?? '';
    assert.ok(DASHBOARD_CSP.includes(`script-src ${hash(script)}`));
    assert.ok(DASHBOARD_CSP.includes(`style-src ${hash(style)}`));
    assert.ok(!/\b(src|href)=/.test(DASHBOARD_HTML.replace(/<script>[\s\S]*<\/script>/, '')), 'no external resources');
  });

  it('page script renders the stats as text, never as markup', async () => {
    const script = /<script>([\s\S]*)<\/script>/.exec(DASHBOARD_HTML)?.[1] ?? '';
    interface FakeElement {
      textContent: string;
      className: string;
      children: FakeElement[];
      attributes: Map<string, string>;
      setAttribute(name: string, value: string): void;
      appendChild(child: FakeElement): void;
      replaceChildren(...children: FakeElement[]): void;
    }
    const element = (): FakeElement => ({
      textContent: '',
      className: '',
      children: [],
      attributes: new Map(),
      setAttribute(name, value) {
        this.attributes.set(name, value);
      },
      appendChild(child) {
        this.children.push(child);
      },
      replaceChildren(...children) {
        this.children = children.flatMap((c) => (c.textContent === '#fragment' ? c.children : [c]));
      },
    });
    const byId = new Map<string, FakeElement>();
    const document = {
      getElementById: (id: string) => byId.get(id) ?? byId.set(id, element()).get(id),
      createElement: () => element(),
      createElementNS: () => element(),
      createDocumentFragment: () => Object.assign(element(), { textContent: '#fragment' }),
    };
    const fetched: string[] = [];
    const history = {
      interval_secs: 10,
      points: [{ t: 1000, online: 2, requests_per_s: { heartbeat: 0.5 }, handshakes_relayed: 1 }],
    };
    const fetch = async (url: string) => {
      fetched.push(url);
      return { ok: true, status: 200, json: async () => (url === 'api/history' ? history : SAMPLE) };
    };
    runInNewContext(script, { document, fetch, setInterval: () => 0, Date, Number, String, Math, Error });
    for (let i = 0; i < 10; i++) await tick();
    assert.deepEqual(fetched, ['api/stats', 'api/history']);
    assert.equal(byId.get('total_requests')?.textContent, (1500).toLocaleString());
    const row = byId.get('nodes')?.children[0];
    assert.deepEqual(
      row?.children.map((c) => c.textContent),
      ['0:0000.0000.0001', 'alpha', '<img src=x onerror=alert(1)>', 'online', '1', 'yes', '4'],
    );
    const node = byId.get('trust-graph')?.children.find((c) => c.attributes.get('class') === 'node');
    assert.deepEqual(
      node?.children.map((c) => c.textContent).filter((t) => t !== ''),
      ['alpha 0:0000.0000.0001 · online · 1 trust links', 'alpha', '0:0000.0000.0001'],
    );
    const line = byId.get('chart-online')?.children.find((c) => c.attributes.get('class') === 'series');
    assert.equal(line?.attributes.get('data-points'), '1');
    assert.equal(byId.get('networks')?.children[0]?.children[1]?.textContent, 'backbone');
    assert.match(byId.get('status')?.textContent ?? '', /^up 1h 2m · updated /);
  });
});

describe('dashboard server', () => {
  let registry: RegistryServer;
  let dashboard: Dashboard;
  let clock = 1_000_000;
  let computed = 0;
  let base = '';

  before(async () => {
    registry = await RegistryServer.start({ host: '127.0.0.1', port: 0, storePath: ':memory:' });
    const source = {
      stats: () => {
        computed++;
        return registry.stats();
      },
      requestCounts: () => registry.requestCounts(),
      onlineCount: () => registry.onlineCount(),
      handshakesRelayed: () => registry.handshakesRelayed(),
    };
    dashboard = await startDashboard({ host: '127.0.0.1', port: 0, source, now: () => clock });
    base = `http://127.0.0.1:${dashboard.port}`;
  });
  after(async () => {
    await dashboard.close();
    await registry.close();
  });

  it('computes the stats at most once a second, whatever the request rate', async () => {
    const before = computed;
    for (let i = 0; i < 5; i++) assert.equal((await fetch(`${base}/api/stats`)).status, 200);
    assert.equal((await fetch(`${base}/api/badge/nodes`)).status, 200);
    assert.equal(computed - before, 1);
    clock += 999;
    await fetch(`${base}/api/stats`);
    assert.equal(computed - before, 1);
    clock += 1;
    await fetch(`${base}/api/stats`);
    assert.equal(computed - before, 2);
  });

  it('serves the known paths with their content types', async () => {
    const stats = await fetch(`${base}/api/stats?x=1`);
    assert.equal(stats.headers.get('access-control-allow-origin'), '*');
    assert.equal(((await stats.json()) as RegistryStats).total_nodes, 0);
    const page = await fetch(`${base}/`);
    assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
    assert.equal(page.headers.get('content-security-policy'), DASHBOARD_CSP);
    for (const name of ['nodes', 'trust', 'requests', 'tags', 'task-executors']) {
      const badge = await fetch(`${base}/api/badge/${name}`);
      assert.equal(badge.status, 200, name);
      assert.equal(badge.headers.get('content-type'), 'image/svg+xml');
      assert.match(badge.headers.get('cache-control') ?? '', /max-age=\d+/);
      assert.match(await badge.text(), /^<svg /);
    }
    const metrics = await fetch(`${base}/metrics`);
    assert.equal(metrics.status, 200);
    assert.match(await metrics.text(), /^pilot_registry_uptime_seconds \d+$/m);
  });

  it('answers 404, 405 and HEAD, and closes connections that send a body', async () => {
    for (const path of ['/api/badge/other', '/api/stats/', '/debug/pprof/', '/index.html'])
      assert.equal((await fetch(`${base}${path}`)).status, 404, path);
    const post = await fetch(`${base}/api/stats`, { method: 'POST', body: 'x'.repeat(100_000) });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET, HEAD');
    assert.equal(post.headers.get('connection'), 'close');
    assert.equal((await fetch(`${base}/api/stats`, { method: 'DELETE' })).status, 405);
    const head = await fetch(`${base}/api/stats`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(await head.text(), '');
  });

  it('survives malformed and oversized requests', async () => {
    assert.match(await rawHttp(dashboard.port, 'NOT HTTP AT ALL\r\n\r\n'), /^HTTP\/1\.1 400/);
    assert.match(
      await rawHttp(dashboard.port, `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`),
      /^HTTP\/1\.1 431/,
    );
    assert.match(
      await rawHttp(dashboard.port, 'GET http://[bad/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'),
      /^HTTP\/1\.1 (400|404)/,
    );
    assert.equal((await fetch(`${base}/api/stats`)).status, 200);
  });
});
