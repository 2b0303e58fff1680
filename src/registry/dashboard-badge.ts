import type { RegistryStats } from './stats.js';

/** Small SVG status badges (`GET /api/badge/<name>`), in the usual label | value layout. */

export interface Badge {
  readonly label: string;
  readonly value: string;
  readonly color: string;
}

const IDLE_COLOR = '#9f9f9f';

/** 1234 → `1.2K`, as badges have room for a few characters only. */
export function formatCount(n: number): string {
  const units: [number, string][] = [
    [1e9, 'B'],
    [1e6, 'M'],
    [1e3, 'K'],
  ];
  for (const [size, suffix] of units) if (n >= size) return `${(n / size).toFixed(1)}${suffix}`;
  return String(Math.trunc(n));
}

const badge = (label: string, count: number, color: string): Badge => ({
  label,
  value: formatCount(count),
  color: count === 0 ? IDLE_COLOR : color,
});

export const BADGES: ReadonlyMap<string, (stats: RegistryStats) => Badge> = new Map([
  ['nodes', (s: RegistryStats) => badge('online nodes', s.active_nodes, '#2e9e44')],
  ['trust', (s: RegistryStats) => badge('trust links', s.total_trust_links, '#3b7dd8')],
  ['requests', (s: RegistryStats) => badge('requests', s.total_requests, '#8a4fd6')],
  ['tags', (s: RegistryStats) => badge('tags', s.unique_tags, '#c27c0e')],
  ['task-executors', (s: RegistryStats) => badge('task executors', s.task_executors, '#0f8a8a')],
]);

export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Width of a text run in px for an 11 px sans-serif face, estimated per character. */
const textWidth = (text: string): number => Math.ceil(text.length * 6.8) + 12;

export function renderBadge({ label, value, color }: Badge): string {
  const labelWidth = textWidth(label);
  const valueWidth = textWidth(value);
  const width = labelWidth + valueWidth;
  const title = escapeXml(`${label}: ${value}`);
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="20" role="img" aria-label="${title}">`,
    `<title>${title}</title>`,
    `<clipPath id="c"><rect width="${width}" height="20" rx="3"/></clipPath>`,
    `<g clip-path="url(#c)"><rect width="${labelWidth}" height="20" fill="#555"/>`,
    `<rect x="${labelWidth}" width="${valueWidth}" height="20" fill="${escapeXml(color)}"/></g>`,
    '<g fill="#fff" text-anchor="middle" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11">',
    `<text x="${labelWidth / 2}" y="14">${escapeXml(label)}</text>`,
    `<text x="${labelWidth + valueWidth / 2}" y="14">${escapeXml(value)}</text>`,
    '</g></svg>',
  ].join('');
}
