import { isIP } from 'node:net';

/** IP addresses as raw bytes, the way Go's net.IP carries them on the beacon wire (§4). */

function isV4Mapped(b: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false;
  return b[10] === 0xff && b[11] === 0xff;
}

function formatV4(b: Uint8Array, at: number): string {
  return `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;
}

/**
 * Text form of a 4- or 16-byte address like Go's net.IP.String(): IPv4-mapped IPv6 prints as
 * dotted IPv4, other IPv6 addresses per RFC 5952 (lower case, longest zero run of ≥2 groups as ::).
 */
export function formatIpBytes(b: Uint8Array): string {
  if (b.length === 4) return formatV4(b, 0);
  if (b.length !== 16) throw new RangeError(`IP address must be 4 or 16 bytes, got ${b.length}`);
  if (isV4Mapped(b)) return formatV4(b, 12);
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((b[i] as number) << 8) | (b[i + 1] as number));
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (gs: number[]): string => gs.map((g) => g.toString(16)).join(':');
  if (bestLen < 2) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLen))}`;
}

function parseV4(text: string, out: Uint8Array, at: number): void {
  text.split('.').forEach((part, i) => {
    out[at + i] = Number.parseInt(part, 10);
  });
}

/**
 * Wire bytes of an IP address like Go's To4()-or-16 rule: IPv4 (and IPv4-mapped IPv6) → 4 bytes,
 * other IPv6 → 16 bytes. Throws RangeError on anything that is not a plain IP literal.
 */
export function parseIpBytes(text: string): Uint8Array {
  const family = isIP(text);
  if (family === 4) {
    const out = new Uint8Array(4);
    parseV4(text, out, 0);
    return out;
  }
  if (family !== 6 || text.includes('%')) throw new RangeError(`not an IP address: ${JSON.stringify(text)}`);
  const out = new Uint8Array(16);
  let body = text;
  let tailV4: string | null = null;
  const lastColon = body.lastIndexOf(':');
  if (body.slice(lastColon + 1).includes('.')) {
    tailV4 = body.slice(lastColon + 1);
    // Keep the separator so that "::1.2.3.4" still splits correctly.
    body = `${body.slice(0, lastColon + 1)}0:0`;
  }
  const halves = body.split('::');
  const toGroups = (s: string): number[] => (s === '' ? [] : s.split(':').map((g) => Number.parseInt(g, 16)));
  const head = toGroups(halves[0] ?? '');
  const tail = halves.length > 1 ? toGroups(halves[1] ?? '') : [];
  const groups = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  groups.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  if (tailV4 !== null) parseV4(tailV4, out, 12);
  return isV4Mapped(out) ? out.slice(12) : out;
}
