import { isIP } from 'node:net';
import { parseDuration } from '../config/go-flags.js';
import { PilotError } from '../errors.js';
import { parseAddr, type Addr } from '../protocol/address.js';
import { splitHostPort } from '../protocol/host-port.js';

/**
 * pilotctl's argument rules (PROTOCOL.md §11.1): `--json` anywhere, then per command `--k=v`,
 * `--k v` when the next token does not start with `--`, `--k` alone = "true"; everything else is
 * positional.
 */
export interface ParsedArgs {
  readonly flags: ReadonlyMap<string, string>;
  readonly positionals: readonly string[];
}

export function extractJsonFlag(argv: readonly string[]): { json: boolean; rest: string[] } {
  const rest = argv.filter((a) => a !== '--json' && a !== '--json=true');
  return { json: rest.length !== argv.length, rest };
}

export function parseArgs(tokens: readonly string[]): ParsedArgs {
  const flags = new Map<string, string>();
  const positionals: string[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const tok = tokens[i] as string;
    if (!tok.startsWith('--') || tok === '--') {
      positionals.push(tok);
      continue;
    }
    const body = tok.slice(2);
    const eq = body.indexOf('=');
    if (eq >= 0) {
      flags.set(body.slice(0, eq), body.slice(eq + 1));
      continue;
    }
    const next = tokens[i + 1];
    if (next !== undefined && !next.startsWith('--')) {
      flags.set(body, next);
      i++;
    } else {
      flags.set(body, 'true');
    }
  }
  return { flags, positionals };
}

export type FlagType = 'string' | 'bool';

/** Refuses flags the command does not know, so a typo never passes silently. */
export function checkFlags(command: string, args: ParsedArgs, known: Readonly<Record<string, FlagType>>): void {
  for (const name of args.flags.keys()) {
    if (!(name in known)) {
      const list = Object.keys(known)
        .map((k) => `--${k}`)
        .join(', ');
      throw invalid(
        `unknown flag --${name} for "${command}"`,
        list ? `accepted flags: ${list}` : `"${command}" takes no flags`,
      );
    }
  }
}

/**
 * A command line that cannot be run as written (unknown command or flag, missing or malformed
 * argument): code `invalid_argument`, exit status 2 with or without `--json`.
 */
export class UsageError extends PilotError {
  constructor(
    message: string,
    hint?: string,
    /** Follow the message with the full command list (text mode only). */
    readonly showUsage = false,
  ) {
    super('invalid_argument', message, hint);
  }
}

export function isUsageError(err: unknown): err is UsageError {
  return err instanceof UsageError;
}

export function invalid(message: string, hint?: string): PilotError {
  return new UsageError(message, hint);
}

/** Reference rule: a boolean flag is true for `true`, `1` or empty. */
export function boolFlag(args: ParsedArgs, name: string): boolean {
  const v = args.flags.get(name);
  if (v === undefined) return false;
  if (v === '' || v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  throw invalid(
    `invalid value ${JSON.stringify(v)} for --${name}: expected true or false`,
    `write --${name} alone, or --${name}=false`,
  );
}

export function stringFlag(args: ParsedArgs, name: string): string | undefined {
  return args.flags.get(name);
}

export function requireFlag(args: ParsedArgs, name: string, usage: string): string {
  const v = args.flags.get(name);
  if (v === undefined || v === 'true') throw invalid(`--${name} is required`, `usage: ${usage}`);
  return v;
}

export function positional(args: ParsedArgs, index: number, name: string, usage: string): string {
  const v = args.positionals[index];
  if (v === undefined) throw invalid(`missing argument <${name}>`, `usage: ${usage}`);
  return v;
}

export function maxPositionals(args: ParsedArgs, max: number, usage: string): void {
  const extra = args.positionals[max];
  if (extra !== undefined) throw invalid(`unexpected argument ${JSON.stringify(extra)}`, `usage: ${usage}`);
}

export function parsePort(text: string, what = 'port'): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) > 0xffff) {
    throw invalid(`invalid ${what} ${JSON.stringify(text)}: must be a number from 0 to 65535`);
  }
  return Number(text);
}

/** A node id: decimal u32, or an address text whose node part is taken. */
export function parseNodeId(text: string): number {
  if (/^\d{1,10}$/.test(text) && Number(text) <= 0xffffffff) return Number(text);
  const addr = parseAddr(text);
  if (addr.ok) return addr.value.node;
  throw invalid(
    `invalid node id ${JSON.stringify(text)}: expected a number from 0 to 4294967295`,
    'node ids are shown by "pilotctl trust", "pilotctl pending" and "pilotctl info"',
  );
}

export function parseConnId(text: string): number {
  if (/^\d{1,10}$/.test(text) && Number(text) <= 0xffffffff) return Number(text);
  throw invalid(`invalid connection id ${JSON.stringify(text)}`, 'connection ids are listed by "pilotctl connections"');
}

export function parseCount(text: string, name: string, options: { min?: number; max?: number } = {}): number {
  const min = options.min ?? 1;
  const max = options.max ?? 1_000_000;
  if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) {
    throw invalid(`invalid --${name} ${JSON.stringify(text)}: must be a whole number from ${min} to ${max}`);
  }
  return Number(text);
}

export function countFlag(
  args: ParsedArgs,
  name: string,
  fallback: number,
  options: { min?: number; max?: number } = {},
): number {
  const v = args.flags.get(name);
  return v === undefined ? fallback : parseCount(v, name, options);
}

/** Go-style duration (`30s`, `500ms`, `2m`) or bare seconds, returned in milliseconds. */
export function parseDurationArg(text: string, name: string, options: { allowZero?: boolean } = {}): number {
  const ms = parseDuration(text);
  if (
    ms === undefined ||
    !Number.isFinite(ms) ||
    ms < 0 ||
    (ms === 0 && options.allowZero !== true) ||
    ms > 7 * 86_400_000
  ) {
    throw invalid(`invalid --${name} ${JSON.stringify(text)}: expected a duration such as 30s, 500ms or 2m`);
  }
  return ms;
}

export function durationFlag(
  args: ParsedArgs,
  name: string,
  fallbackMs: number,
  options: { allowZero?: boolean } = {},
): number {
  const v = args.flags.get(name);
  return v === undefined ? fallbackMs : parseDurationArg(v, name, options);
}

const HOSTNAME_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const RESERVED_HOSTNAMES = new Set(['localhost', 'backbone', 'broadcast']);

export function isHostname(text: string): boolean {
  return HOSTNAME_RE.test(text) && !RESERVED_HOSTNAMES.has(text);
}

export function validateHostname(text: string): string {
  if (RESERVED_HOSTNAMES.has(text)) throw invalid(`hostname ${JSON.stringify(text)} is reserved`);
  if (!HOSTNAME_RE.test(text)) {
    throw invalid(
      `invalid hostname ${JSON.stringify(text)}`,
      '1-63 characters of a-z, 0-9 and "-", starting and ending with a letter or digit',
    );
  }
  return text;
}

const TAG_RE = /^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/;
export const MAX_TAGS = 3;

/** Tags with one leading `#` stripped, each checked against the registry's rule (§5.8). */
export function validateTags(raw: readonly string[], usage?: string): string[] {
  if (raw.length === 0) throw invalid('no tags given', usage === undefined ? undefined : `usage: ${usage}`);
  if (raw.length > MAX_TAGS) throw invalid(`too many tags (${raw.length}): at most ${MAX_TAGS}`);
  return raw.map((t) => {
    const tag = t.startsWith('#') ? t.slice(1) : t;
    if (!TAG_RE.test(tag)) {
      throw invalid(
        `invalid tag ${JSON.stringify(t)}`,
        '1-32 characters of a-z, 0-9 and "-", starting and ending with a letter or digit',
      );
    }
    return tag;
  });
}

export function validateWebhookUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw invalid(`invalid webhook URL ${JSON.stringify(text)}`, 'use a full URL such as https://example.com/hook');
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || !text.startsWith(`${url.protocol}//`)) {
    throw invalid(`invalid webhook URL ${JSON.stringify(text)}: must start with http:// or https://`);
  }
  return text;
}

/** `host:port` of a UDP/TCP endpoint (registry, beacon, listen address). Host may be empty only if allowed. */
export function validateHostPort(text: string, what: string, options: { allowEmptyHost?: boolean } = {}): string {
  const host = splitHostPort(text)?.host;
  const hostOk =
    host === undefined
      ? false
      : host === ''
        ? options.allowEmptyHost === true
        : isIP(host) !== 0 || /^[A-Za-z0-9.-]+$/.test(host);
  if (!hostOk) {
    throw invalid(`invalid ${what} address ${JSON.stringify(text)}: expected host:port`, 'for example 127.0.0.1:9000');
  }
  return text;
}

/** A target given as a node id or an address text; undefined when it can only be a hostname. */
export function parseDirectTarget(text: string): Addr | undefined {
  if (/^\d{1,10}$/.test(text)) {
    if (Number(text) > 0xffffffff) throw invalid(`invalid node id ${JSON.stringify(text)}: out of range`);
    return { network: 0, node: Number(text) };
  }
  const addr = parseAddr(text);
  if (addr.ok) return addr.value;
  if (text.includes(':')) throw invalid(addr.error.message, 'addresses look like 0:0000.0000.0002');
  return undefined;
}
