import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { DEFAULT_BEACON, DEFAULT_REGISTRY, DEFAULT_SOCKET } from '../config/home.js';
import { ensureDir, writeFileAtomic } from '../crypto/atomic-file.js';
import { PilotError } from '../errors.js';
import { isJsonObject, type JsonObject } from '../protocol/json.js';
import { normalizeFingerprint } from '../registry/tls-pin.js';
import type { CliContext } from './context.js';

/** `config.json` (PROTOCOL.md §10.3): the CLI is the module that reads and writes it. */
export async function readConfig(path: string): Promise<JsonObject> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new PilotError('internal', `cannot read ${path}: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new PilotError('invalid_argument', `${path} is not valid JSON`, 'fix the file or recreate it with: pilotctl init');
  }
  if (!isJsonObject(parsed)) throw new PilotError('invalid_argument', `${path} does not hold a JSON object`, 'recreate it with: pilotctl init');
  return parsed;
}

/** Indented with 2 spaces plus a newline, as the reference writes it; directory 0700. */
export async function writeConfig(path: string, config: JsonObject): Promise<void> {
  await ensureDir(dirname(path), 0o700);
  await writeFileAtomic(path, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
}

export async function updateConfig(path: string, change: (config: JsonObject) => void): Promise<JsonObject> {
  const config = await readConfig(path);
  change(config);
  await writeConfig(path, config);
  return config;
}

function configString(config: JsonObject, key: string): string | undefined {
  const v = config[key];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function envString(env: NodeJS.ProcessEnv, key: string): string | undefined {
  const v = env[key];
  return v !== undefined && v !== '' ? v : undefined;
}

export interface Settings {
  readonly config: JsonObject;
  readonly registry: string;
  /** Pinned registry certificate (unvalidated text); when set, the registry is reached over TLS. */
  readonly registryFingerprint: string | undefined;
  readonly beacon: string;
  readonly socket: string;
  readonly hostname: string | undefined;
  readonly webhook: string | undefined;
}

export interface SettingsFlags {
  readonly registry?: string | undefined;
  /** An empty string turns a configured fingerprint off (plain TCP). */
  readonly registryFingerprint?: string | undefined;
  readonly beacon?: string | undefined;
  readonly socket?: string | undefined;
  readonly hostname?: string | undefined;
  readonly webhook?: string | undefined;
}

/**
 * Resolves the CLI's settings once. Registry, its fingerprint (`registry_fingerprint`,
 * `PILOT_REGISTRY_FINGERPRINT`) and beacon: flag > config.json > environment > default. Socket:
 * flag > PILOT_SOCKET > config.json > default (the environment names the daemon a shell talks to,
 * so it beats the file).
 */
export async function resolveSettings(ctx: CliContext, flags: SettingsFlags = {}): Promise<Settings> {
  const config = await readConfig(ctx.paths.config);
  return {
    config,
    registry: flags.registry ?? configString(config, 'registry') ?? envString(ctx.env, 'PILOT_REGISTRY') ?? DEFAULT_REGISTRY,
    registryFingerprint:
      flags.registryFingerprint !== undefined
        ? flags.registryFingerprint || undefined
        : (configString(config, 'registry_fingerprint') ?? envString(ctx.env, 'PILOT_REGISTRY_FINGERPRINT')),
    beacon: flags.beacon ?? configString(config, 'beacon') ?? envString(ctx.env, 'PILOT_BEACON') ?? DEFAULT_BEACON,
    socket: flags.socket ?? envString(ctx.env, 'PILOT_SOCKET') ?? configString(config, 'socket') ?? DEFAULT_SOCKET,
    hostname: flags.hostname ?? configString(config, 'hostname'),
    webhook: flags.webhook ?? configString(config, 'webhook'),
  };
}

/**
 * TLS to the registry for commands that reach it: on when a fingerprint is configured (pinned,
 * never unpinned); `--registry-tls` without one is refused.
 */
export function registryTls(settings: Settings, tlsFlag: boolean): { fingerprint: string } | undefined {
  if (settings.registryFingerprint === undefined) {
    if (!tlsFlag) return undefined;
    throw new PilotError(
      'invalid_argument',
      '--registry-tls needs the registry certificate fingerprint',
      'give --registry-fingerprint <hex> or store it: pilotctl config --set registry_fingerprint=<hex>',
    );
  }
  return { fingerprint: normalizeFingerprint(settings.registryFingerprint) };
}

export async function socketPath(ctx: CliContext): Promise<string> {
  return (await resolveSettings(ctx)).socket;
}
