import { readFileSync } from 'node:fs';
import { PilotError } from '../errors.js';
import type { LogFormat } from '../log.js';

/**
 * Command-line flags in the style of Go's `flag` package, which the reference binaries use:
 * `-name value`, `-name=value`, `--name value`, `--name=value`; a boolean flag alone means true
 * and takes a value only as `-name=false`. Parsing stops at `--` or the first positional.
 * Names may be written with `-` or `_` (`-idle-timeout`, `-idle_timeout`).
 */
export type FlagKind = 'string' | 'bool' | 'int' | 'duration';

export interface FlagDef {
  readonly kind: FlagKind;
  readonly help: string;
}

export type FlagSpec = Readonly<Record<string, FlagDef>>;

type ValueOf<K extends FlagKind> = K extends 'bool' ? boolean : K extends 'string' ? string : number;

/** Parsed flags: only the ones given on the command line are present. Durations are in ms. */
export type FlagValues<S extends FlagSpec> = { -readonly [N in keyof S]?: ValueOf<S[N]['kind']> };

export interface ParsedFlags<S extends FlagSpec> {
  readonly flags: FlagValues<S>;
  readonly positionals: string[];
}

/** Parses a Go duration (`300ms`, `1.5s`, `2m`, `1h30m`) or a bare number of seconds into ms. */
export function parseDuration(text: string): number | undefined {
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text) * 1000;
  const unitMs: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let matched = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    total += Number(m[1]) * (unitMs[m[2] as string] as number);
    matched = re.lastIndex;
  }
  return matched === text.length && matched > 0 ? total : undefined;
}

function convert(name: string, def: FlagDef, raw: string): boolean | string | number {
  switch (def.kind) {
    case 'string':
      return raw;
    case 'bool': {
      if (['1', 't', 'true', 'TRUE', 'True'].includes(raw)) return true;
      if (['0', 'f', 'false', 'FALSE', 'False'].includes(raw)) return false;
      throw new PilotError('invalid_argument', `invalid boolean value ${JSON.stringify(raw)} for -${name}`);
    }
    case 'int': {
      if (!/^-?\d+$/.test(raw) || !Number.isSafeInteger(Number(raw))) {
        throw new PilotError('invalid_argument', `invalid integer value ${JSON.stringify(raw)} for -${name}`);
      }
      return Number(raw);
    }
    case 'duration': {
      const ms = parseDuration(raw);
      if (ms === undefined) {
        throw new PilotError(
          'invalid_argument',
          `invalid duration ${JSON.stringify(raw)} for -${name}`,
          'use a number with a unit, e.g. 30s, 500ms, 2m',
        );
      }
      return ms;
    }
  }
}

export function parseGoFlags<S extends FlagSpec>(argv: readonly string[], spec: S): ParsedFlags<S> {
  const canonical = new Map<string, string>();
  for (const name of Object.keys(spec)) {
    canonical.set(name, name);
    canonical.set(name.replaceAll('-', '_'), name);
  }
  const flags: Record<string, boolean | string | number> = {};
  let i = 0;
  for (; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--') {
      i++;
      break;
    }
    if (!arg.startsWith('-') || arg === '-') break;
    const body = arg.replace(/^--?/, '');
    const eq = body.indexOf('=');
    const given = eq >= 0 ? body.slice(0, eq) : body;
    // Go's flag package takes -h (and --h) for -help.
    const name = canonical.get(given === 'h' && spec.help !== undefined ? 'help' : given);
    const def = name === undefined ? undefined : spec[name];
    if (name === undefined || def === undefined) {
      throw new PilotError(
        'invalid_argument',
        `flag provided but not defined: -${given}`,
        'run with -help to list the flags',
      );
    }
    let raw: string;
    if (eq >= 0) raw = body.slice(eq + 1);
    else if (def.kind === 'bool') raw = 'true';
    else {
      const next = argv[i + 1];
      if (next === undefined) throw new PilotError('invalid_argument', `flag needs an argument: -${given}`);
      raw = next;
      i++;
    }
    flags[name] = convert(name, def, raw);
  }
  return { flags: flags as FlagValues<S>, positionals: argv.slice(i) };
}

/** A config file larger than this is refused (it holds a handful of flag values). */
const MAX_CONFIG_BYTES = 1 << 20;

/**
 * Flag values from a `-config <file>` JSON object, as the reference's binaries take them: keys are
 * flag names (`-` or `_`), values strings, numbers or booleans converted and checked as on the
 * command line (durations as strings like "30s"). Keys that are not flags are ignored; merge the
 * command line's values over these.
 */
export function configFileFlags<S extends FlagSpec>(path: string, spec: S): FlagValues<S> {
  let doc: unknown;
  try {
    const text = readFileSync(path);
    if (text.length > MAX_CONFIG_BYTES) throw new Error(`larger than ${MAX_CONFIG_BYTES} bytes`);
    doc = JSON.parse(text.toString('utf8'));
  } catch (err) {
    throw new PilotError('invalid_argument', `cannot read config file ${path}: ${(err as Error).message}`);
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc))
    throw new PilotError('invalid_argument', `config file ${path} must hold a JSON object`);
  const out: Record<string, boolean | string | number> = {};
  for (const [key, value] of Object.entries(doc as Record<string, unknown>)) {
    const name = key.replaceAll('_', '-');
    const def = name === 'config' ? undefined : spec[name];
    if (def === undefined) continue;
    if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
      throw new PilotError('invalid_argument', `config file ${path}: ${key} must be a string, number or boolean`);
    }
    out[name] = convert(name, def, String(value));
  }
  return out as FlagValues<S>;
}

/** parseGoFlags, then the values of `-config <file>` (when the spec has it) under the command line's. */
export function parseGoFlagsWithConfig<S extends FlagSpec>(argv: readonly string[], spec: S): ParsedFlags<S> {
  const parsed = parseGoFlags(argv, spec);
  const file = (parsed.flags as Record<string, unknown>).config;
  if (typeof file !== 'string' || file === '') return parsed;
  return { flags: { ...configFileFlags(file, spec), ...parsed.flags }, positionals: parsed.positionals };
}

/** The reference's `-log-format text|json`: pilot-ts always writes JSON lines; anything else is an error. */
export const LOG_FORMAT_FLAG = {
  kind: 'string',
  help: 'json (default: one JSON object per line) or text (one readable line per entry)',
} as const satisfies FlagDef;

/** The reference's `-log-format text|json`; JSON when absent. */
export function parseLogFormat(value: string | undefined): LogFormat {
  if (value === undefined || value === '' || value === 'json') return 'json';
  if (value === 'text') return 'text';
  throw new PilotError('invalid_argument', `invalid -log-format ${JSON.stringify(value)}: text or json`);
}

/** Usage text listing every flag, for `-help`. */
export function flagUsage(command: string, spec: FlagSpec): string {
  const lines = [`Usage of ${command}:`];
  for (const [name, def] of Object.entries(spec)) {
    lines.push(`  -${name}${def.kind === 'bool' ? '' : ` ${def.kind}`}`, `    \t${def.help}`);
  }
  return lines.join('\n');
}
