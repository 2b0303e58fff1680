import { createHash } from 'node:crypto';
import { CHARTS_SCRIPT, CHARTS_STYLE } from './dashboard-charts.js';

/**
 * The dashboard's HTML page (`GET /`): no external resources; the script reads `api/stats` and
 * `api/history` every few seconds, draws the charts and the trust graph as inline SVG, and writes
 * values only through `textContent`, so node data is never parsed as HTML.
 */

const STYLE = `${CHARTS_STYLE}
:root { color-scheme: light dark; --muted: #777; --line: #8884; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1000px; padding: 24px 16px; font: 14px/1.5 system-ui, sans-serif; }
h1 { font-size: 20px; margin: 0; }
h2 { font-size: 15px; margin: 28px 0 4px; }
#status, .note { color: var(--muted); margin: 4px 0 12px; font-size: 12px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(120px, 1fr)); gap: 12px; margin-top: 16px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 14px; text-align: center; }
.card b { display: block; font-size: 26px; font-variant-numeric: tabular-nums; }
.card span { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
table { width: 100%; border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line); }
th { color: var(--muted); font-size: 12px; font-weight: 600; }
td.addr { font-family: ui-monospace, monospace; }
.on { color: #2e9e44; }
`;

const SCRIPT = `
'use strict';
${CHARTS_SCRIPT}
const COUNTS = ['total_nodes', 'active_nodes', 'total_trust_links', 'total_requests', 'handshakes_relayed', 'unique_tags', 'task_executors'];
const status = document.getElementById('status');

function cell(row, text, className) {
  const td = document.createElement('td');
  td.textContent = String(text);
  if (className) td.className = className;
  row.appendChild(td);
}

function uptime(secs) {
  const d = Math.floor(secs / 86400), h = Math.floor(secs % 86400 / 3600), m = Math.floor(secs % 3600 / 60);
  return (d > 0 ? d + 'd ' : '') + (d > 0 || h > 0 ? h + 'h ' : '') + m + 'm';
}

function rows(items, columns) {
  const fragment = document.createDocumentFragment();
  for (const item of items) {
    const tr = document.createElement('tr');
    for (const [value, className] of columns(item)) cell(tr, value, className);
    fragment.appendChild(tr);
  }
  return fragment;
}

async function getJson(path) {
  const res = await fetch(path, { cache: 'no-store' });
  if (!res.ok) throw new Error(path + ': HTTP ' + res.status);
  return res.json();
}

async function refresh() {
  try {
    const [stats, history] = await Promise.all([getJson('api/stats'), getJson('api/history')]);
    for (const key of COUNTS) document.getElementById(key).textContent = Number(stats[key]).toLocaleString();
    document.getElementById('networks').replaceChildren(rows(stats.networks, (n) => [[n.id], [n.name], [n.members], [n.online_members]]));
    document.getElementById('nodes').replaceChildren(rows(stats.nodes, (n) => [
      [n.address, 'addr'],
      [n.hostname || ''],
      [(n.tags || []).join(', ')],
      [n.online ? 'online' : 'offline', n.online ? 'on' : ''],
      [n.trust_links],
      [n.task_exec ? 'yes' : 'no'],
      [n.polo_score],
    ]));
    drawHistory(history);
    drawTrustGraph(document.getElementById('trust-graph'), stats.nodes, stats.edges);
    status.textContent = 'up ' + uptime(Number(stats.uptime_secs)) + ' \\u00b7 updated ' + new Date().toLocaleTimeString();
  } catch (err) {
    status.textContent = 'cannot load statistics: ' + (err instanceof Error ? err.message : String(err));
  }
}

refresh();
setInterval(refresh, 5000);
`;

const card = (id: string, label: string): string => `<div class="card"><b id="${id}">–</b><span>${label}</span></div>`;

const chart = (id: string, label: string): string =>
  `<svg class="chart" id="${id}" role="img" aria-label="${label}" viewBox="0 0 640 170"></svg>`;

export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Pilot registry</title>
<style>${STYLE}</style>
</head>
<body>
<h1>Pilot registry</h1>
<p id="status">loading…</p>
<div class="cards">
${card('total_nodes', 'nodes')}
${card('active_nodes', 'online')}
${card('total_trust_links', 'trust links')}
${card('total_requests', 'requests')}
${card('handshakes_relayed', 'handshakes relayed')}
${card('unique_tags', 'tags')}
${card('task_executors', 'task executors')}
</div>
<h2>Nodes online</h2>
<p class="note">The last hour, one point every <span id="interval">–</span> s (kept in memory: a restart starts a new hour).</p>
${chart('chart-online', 'Nodes online over the last hour')}
<h2>Requests per second by type</h2>
${chart('chart-requests', 'Requests per second by type over the last hour')}
<h2>Handshakes relayed</h2>
<p class="note">Handshake requests and answers passed on by the registry, per point.</p>
${chart('chart-handshakes', 'Handshakes relayed over the last hour')}
<h2>Trust graph</h2>
<p class="note">Public nodes (green when online) and the trust pairs between them.</p>
<svg class="chart" id="trust-graph" role="img" aria-label="Trust graph of public nodes" viewBox="0 0 640 380"></svg>
<h2>Networks</h2>
<table><thead><tr><th>ID</th><th>Name</th><th>Members</th><th>Online</th></tr></thead><tbody id="networks"></tbody></table>
<h2>Public nodes</h2>
<p class="note">Nodes are private unless they make themselves public; only public nodes and the trust between them are shown. The counts above include every node.</p>
<table><thead><tr><th>Address</th><th>Hostname</th><th>Tags</th><th>Status</th><th>Trust links</th><th>Task executor</th><th>Polo score</th></tr></thead><tbody id="nodes"></tbody></table>
<script>${SCRIPT}</script>
</body>
</html>
`;

const sha256 = (text: string): string => `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;

/** Allows exactly the page's own style and script blocks, and fetches to this origin only. */
export const DASHBOARD_CSP = [
  "default-src 'none'",
  `script-src ${sha256(SCRIPT)}`,
  `style-src ${sha256(STYLE)}`,
  "connect-src 'self'",
  "img-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');
