/** Names of stored items: remote-supplied file names are made safe, local stamps keep them unique. */

export const MAX_NAME_BYTES = 200;
export const FALLBACK_NAME = 'file';
const MAX_EXT_CHARS = 16;

const WINDOWS_DEVICES = /^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³]|conin\$|conout\$)$/i;
// Control characters, bidi overrides and the characters Windows refuses in names.
const UNSAFE_CHARS = /[\p{Cc}\u200e\u200f\u202a-\u202e\u2066-\u2069<>:"|?*]/gu;

/**
 * A remote file name reduced to something safe to create inside received/: the last path element
 * only, no control or reserved characters, no leading dot (hidden) or trailing dot/space, never a
 * Windows device name, at most MAX_NAME_BYTES of UTF-8, and FALLBACK_NAME when nothing is left.
 */
export function sanitizeFileName(raw: string): string {
  const parts = raw.split(/[/\\]/);
  let name = (parts[parts.length - 1] ?? '').replace(UNSAFE_CHARS, '');
  name = name.replace(/^[.\s]+/, '').replace(/[.\s]+$/, '');
  if (name === '') return FALLBACK_NAME;
  const { base } = splitExt(name);
  if (WINDOWS_DEVICES.test(base)) name = `_${name}`;
  return truncateUtf8(name, MAX_NAME_BYTES);
}

/** `report.tar.gz` → `report.tar` + `.gz`; an extension is short and never the whole name. */
export function splitExt(name: string): { base: string; ext: string } {
  const dot = name.lastIndexOf('.');
  if (dot <= 0 || name.length - dot > MAX_EXT_CHARS) return { base: name, ext: '' };
  return { base: name.slice(0, dot), ext: name.slice(dot) };
}

/** Cuts the base (keeping the extension) so the UTF-8 form fits in maxBytes, never splitting a character. */
export function truncateUtf8(name: string, maxBytes: number): string {
  if (Buffer.byteLength(name) <= maxBytes) return name;
  const { base, ext } = splitExt(name);
  const room = maxBytes - Buffer.byteLength(ext);
  let out = '';
  let used = 0;
  for (const ch of base) {
    const n = Buffer.byteLength(ch);
    if (used + n > room) break;
    out += ch;
    used += n;
  }
  return (out === '' ? FALLBACK_NAME : out) + ext;
}

function pad(n: number, width = 2): string {
  return String(n).padStart(width, '0');
}

/** Local time as `YYYYMMDD-HHMMSS.mmm` (the reference's stamp). */
export function stamp(date: Date): string {
  return (
    `${date.getFullYear()}${pad(date.getMonth() + 1)}${pad(date.getDate())}-` +
    `${pad(date.getHours())}${pad(date.getMinutes())}${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`
  );
}

/** RFC 3339 in local time with the zone offset, as Go's `time.RFC3339` prints it. */
export function rfc3339Local(date: Date): string {
  const off = -date.getTimezoneOffset();
  const zone =
    off === 0 ? 'Z' : `${off > 0 ? '+' : '-'}${pad(Math.floor(Math.abs(off) / 60))}:${pad(Math.abs(off) % 60)}`;
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}${zone}`
  );
}

/** `<base>-<stamp>-<seq><ext>` for received/, `<TYPE>-<stamp>-<seq>.json` for inbox/. */
export function receivedFileName(safeName: string, date: Date, seq: number): string {
  const { base, ext } = splitExt(safeName);
  return `${base}-${stamp(date)}-${pad(seq % 1_000_000, 6)}${ext}`;
}

export function inboxFileName(typeName: string, date: Date, seq: number): string {
  return `${typeName}-${stamp(date)}-${pad(seq % 1_000_000, 6)}.json`;
}
