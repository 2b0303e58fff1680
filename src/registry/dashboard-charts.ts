/**
 * The dashboard page's drawing code, as browser script text: line charts over the last hour and
 * the trust graph of public nodes, built as SVG elements whose text is set through `textContent`
 * only. Colours come from presentation attributes and the page's style block (the page's CSP
 * allows no inline `style` attribute).
 */

export const CHARTS_STYLE = `
svg.chart { display: block; width: 100%; height: auto; border: 1px solid var(--line); border-radius: 8px; }
svg.chart text { fill: currentColor; font: 11px system-ui, sans-serif; }
svg.chart .axis, svg.chart .empty { fill: var(--muted); }
svg.chart .grid { stroke: var(--line); }
svg.chart .edge { stroke: #3b7dd8; stroke-opacity: .55; stroke-width: 1.5; }
svg.chart .online { fill: #2e9e44; }
svg.chart .offline { fill: #999; }
svg.chart .host { font-weight: 600; }
svg.chart .addr { font-family: ui-monospace, monospace; fill: var(--muted); }
`;

export const CHARTS_SCRIPT = `
const SVG_NS = 'http://www.w3.org/2000/svg';
const PALETTE = ['#3b7dd8', '#2e9e44', '#c27c0e', '#8a4fd6', '#d64545', '#0f8a8a', '#888888'];
const HOUR = 3600;
const CHART_MAX_DOTS = 60;
const GRAPH_MAX_NODES = 150;
const GRAPH_MAX_LABELS = 30;

function svg(name, attrs, text) {
  const el = document.createElementNS(SVG_NS, name);
  for (const key of Object.keys(attrs)) el.setAttribute(key, String(attrs[key]));
  if (text !== undefined) el.textContent = String(text);
  return el;
}

function niceCeil(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5]) if (v <= m * p) return m * p;
  return 10 * p;
}

function shortNumber(v) {
  if (v >= 1e6) return +(v / 1e6).toFixed(1) + 'M';
  if (v >= 1e3) return +(v / 1e3).toFixed(1) + 'k';
  return String(+v.toFixed(2));
}

function clip(text, max) {
  return text.length > max ? text.slice(0, max - 1) + '\\u2026' : text;
}

// series: [{ name, color, points: [[unixSeconds, value], ...] }]; the right edge is end.
function drawLineChart(target, series, end, legend) {
  const W = 640, H = 170, L = 44, R = legend ? 150 : 12, T = 10, B = 22;
  const start = end - HOUR;
  const shown = series.map((s) => ({ ...s, points: s.points.filter((p) => p[0] >= start) }));
  let top = 0;
  for (const s of shown) for (const p of s.points) top = Math.max(top, p[1]);
  top = niceCeil(top);
  const x = (t) => L + ((t - start) / HOUR) * (W - L - R);
  const y = (v) => H - B - (v / top) * (H - T - B);
  const parts = [];
  for (const v of [0, top / 2, top]) {
    parts.push(svg('line', { x1: L, x2: W - R, y1: y(v), y2: y(v), class: 'grid' }));
    parts.push(svg('text', { x: L - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'axis' }, shortNumber(v)));
  }
  const ticks = [[start, '60 min ago', 'start'], [start + HOUR / 2, '30 min ago', 'middle'], [end, 'now', 'end']];
  for (const [t, label, anchor] of ticks)
    parts.push(svg('text', { x: x(t), y: H - 6, 'text-anchor': anchor, class: 'axis' }, label));
  let drawn = 0;
  shown.forEach((s, i) => {
    if (legend) {
      parts.push(svg('rect', { x: W - R + 12, y: T + i * 16, width: 10, height: 10, fill: s.color }));
      parts.push(svg('text', { x: W - R + 28, y: T + i * 16 + 9 }, clip(s.name, 20)));
    }
    if (s.points.length === 0) return;
    drawn++;
    const coords = s.points.map((p) => x(p[0]).toFixed(1) + ',' + y(p[1]).toFixed(1)).join(' ');
    parts.push(svg('polyline', {
      points: coords, fill: 'none', stroke: s.color, 'stroke-width': 2, 'stroke-linejoin': 'round',
      class: 'series', 'data-series': s.name, 'data-points': s.points.length,
    }));
    // A dot on every point while they are few, else on the latest only.
    const dotted = s.points.length <= CHART_MAX_DOTS ? s.points : s.points.slice(-1);
    for (const p of dotted) {
      const dot = svg('circle', { cx: x(p[0]), cy: y(p[1]), r: 3, fill: s.color, class: 'point' });
      dot.appendChild(svg('title', {}, s.name + ': ' + shortNumber(p[1])));
      parts.push(dot);
    }
  });
  if (drawn === 0) parts.push(svg('text', { x: (L + W - R) / 2, y: H / 2, 'text-anchor': 'middle', class: 'empty' }, 'no data yet'));
  target.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
  target.replaceChildren(...parts);
}

function byAddress(a, b) {
  return a.address < b.address ? -1 : a.address > b.address ? 1 : 0;
}

// Public nodes on a circle, trust pairs as chords; the most connected nodes when there are many.
function drawTrustGraph(target, nodes, edges) {
  const W = 640, H = 380, cx = W / 2, cy = H / 2;
  const shown = nodes.slice().sort((a, b) => b.trust_links - a.trust_links || byAddress(a, b));
  shown.length = Math.min(shown.length, GRAPH_MAX_NODES);
  shown.sort(byAddress);
  const radius = shown.length > 1 ? Math.min(W, H) / 2 - 60 : 0;
  const at = new Map();
  shown.forEach((n, i) => {
    const angle = -Math.PI / 2 + (2 * Math.PI * i) / shown.length;
    at.set(n.address, [cx + radius * Math.cos(angle), cy + radius * Math.sin(angle), Math.cos(angle) >= -1e-9]);
  });
  const parts = [];
  for (const e of edges) {
    const a = at.get(e.source), b = at.get(e.target);
    if (!a || !b) continue;
    parts.push(svg('line', { x1: a[0], y1: a[1], x2: b[0], y2: b[1], class: 'edge', 'data-source': e.source, 'data-target': e.target }));
  }
  const labelled = shown.length <= GRAPH_MAX_LABELS;
  const dot = shown.length > 40 ? 4 : 7;
  for (const n of shown) {
    const [px, py, right] = at.get(n.address);
    const g = svg('g', { class: 'node', 'data-address': n.address, 'data-hostname': n.hostname || '' });
    g.appendChild(svg('title', {}, (n.hostname ? n.hostname + ' ' : '') + n.address + ' \\u00b7 ' + (n.online ? 'online' : 'offline') + ' \\u00b7 ' + n.trust_links + ' trust links'));
    g.appendChild(svg('circle', { cx: px, cy: py, r: dot, class: n.online ? 'online' : 'offline' }));
    if (labelled) {
      const lx = px + (right ? 12 : -12), anchor = right ? 'start' : 'end';
      if (n.hostname) g.appendChild(svg('text', { x: lx, y: py - 2, 'text-anchor': anchor, class: 'host' }, clip(n.hostname, 24)));
      g.appendChild(svg('text', { x: lx, y: py + (n.hostname ? 11 : 4), 'text-anchor': anchor, class: 'addr' }, n.address));
    }
    parts.push(g);
  }
  let note = '';
  if (shown.length === 0) note = 'no public nodes';
  else if (shown.length < nodes.length) note = 'the ' + shown.length + ' most connected of ' + nodes.length + ' public nodes';
  if (note) parts.push(svg('text', { x: 12, y: H - 10, class: 'empty' }, note));
  target.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
  target.replaceChildren(...parts);
}

// history: GET api/history. The busiest five request types get a line each, the rest one more.
function drawHistory(history) {
  const points = Array.isArray(history.points) ? history.points : [];
  const end = points.length > 0 ? points[points.length - 1].t : Date.now() / 1000;
  const series = (name, color, value) => ({ name, color, points: points.map((p) => [p.t, value(p)]) });
  drawLineChart(document.getElementById('chart-online'), [series('online', PALETTE[1], (p) => p.online)], end, false);
  const totals = new Map();
  for (const p of points) for (const [type, rate] of Object.entries(p.requests_per_s)) totals.set(type, (totals.get(type) || 0) + rate);
  const top = [...totals].sort((a, b) => b[1] - a[1]).slice(0, 5).map((e) => e[0]);
  const lines = top.map((type, i) => series(type, PALETTE[i], (p) => p.requests_per_s[type] || 0));
  if (totals.size > top.length) {
    const rest = (p) => Object.entries(p.requests_per_s).reduce((sum, [type, rate]) => (top.includes(type) ? sum : sum + rate), 0);
    lines.push(series('other', PALETTE[6], rest));
  }
  drawLineChart(document.getElementById('chart-requests'), lines, end, true);
  drawLineChart(document.getElementById('chart-handshakes'), [series('relayed', PALETTE[3], (p) => p.handshakes_relayed)], end, false);
  document.getElementById('interval').textContent = String(history.interval_secs);
}
`;
