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
    throw new PilotError(
      'invalid_argument',
      `${path} is not valid JSON`,
      'fix the file or recreate it with: pilotctl init',
    );
  }
  if (!isJsonObject(parsed))
    throw new PilotError('invalid_argument', `${path} does not hold a JSON object`, 'recreate it with: pilotctl init');
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

/** Where a resolved value came from. */
export type SettingSource = 'flag' | 'config' | 'env' | 'default' | 'derived';

/**
 * The beacon that goes with a registry: same host, the next port (the defaults are 9000 and 9001,
 * and a local rendezvous serves them so). Undefined when the registry port is the last one.
 */
export function beaconFor(registry: string): string | undefined {
  const colon = registry.lastIndexOf(':');
  const port = Number(registry.slice(colon + 1));
  if (colon < 0 || !Number.isInteger(port) || port < 0 || port >= 0xffff) return undefined;
  return `${registry.slice(0, colon)}:${port + 1}`;
}

export interface Settings {
  readonly config: JsonObject;
  readonly registry: string;
  readonly registrySource: SettingSource;
  /** Pinned registry certificate (unvalidated text); when set, the registry is reached over TLS. */
  readonly registryFingerprint: string | undefined;
  readonly beacon: string;
  /** `derived`: registry host, registry port + 1 (see beaconFor). */
  readonly beaconSource: SettingSource;
  readonly socket: string;
  readonly socketSource: SettingSource;
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

function pick(
  candidates: readonly [string | undefined, SettingSource][],
  fallback: [string, SettingSource],
): [string, SettingSource] {
  for (const [value, source] of candidates) if (value !== undefined) return [value, source];
  return fallback;
}

/**
 * Resolves the CLI's settings once. Registry and its fingerprint (`registry_fingerprint`,
 * `PILOT_REGISTRY_FINGERPRINT`): flag > config.json > environment > default. Beacon: flag, else
 * the registry's next port when the registry is given as a flag (a beacon configured for another
 * registry would not match), else config.json > environment > the registry's next port > default.
 * Socket: flag > PILOT_SOCKET > config.json > default (the environment names the daemon a shell
 * talks to, so it beats the file).
 */
export async function resolveSettings(ctx: CliContext, flags: SettingsFlags = {}): Promise<Settings> {
  const config = await readConfig(ctx.paths.config);
  const [registry, registrySource] = pick(
    [
      [flags.registry, 'flag'],
      [configString(config, 'registry'), 'config'],
      [envString(ctx.env, 'PILOT_REGISTRY'), 'env'],
    ],
    [DEFAULT_REGISTRY, 'default'],
  );
  const derived = beaconFor(registry);
  const [beacon, beaconSource] = pick(
    [
      [flags.beacon, 'flag'],
      [flags.registry !== undefined ? derived : undefined, 'derived'],
      [configString(config, 'beacon'), 'config'],
      [envString(ctx.env, 'PILOT_BEACON'), 'env'],
      [registry !== DEFAULT_REGISTRY ? derived : undefined, 'derived'],
    ],
    [DEFAULT_BEACON, 'default'],
  );
  const [socket, socketSource] = pick(
    [
      [flags.socket, 'flag'],
      [envString(ctx.env, 'PILOT_SOCKET'), 'env'],
      [configString(config, 'socket'), 'config'],
    ],
    [DEFAULT_SOCKET, 'default'],
  );
  return {
    config,
    registry,
    registrySource,
    registryFingerprint:
      flags.registryFingerprint !== undefined
        ? flags.registryFingerprint || undefined
        : (configString(config, 'registry_fingerprint') ?? envString(ctx.env, 'PILOT_REGISTRY_FINGERPRINT')),
    beacon,
    beaconSource,
    socket,
    socketSource,
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
