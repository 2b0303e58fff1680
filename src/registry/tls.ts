import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { open } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ensureDir, writeFileAtomic } from '../crypto/atomic-file.js';
import { PilotError } from '../errors.js';
import { certificateFingerprint } from './tls-pin.js';
import { generateSelfSigned, type PemPair } from './tls-self-signed.js';

/**
 * The registry's TLS certificate (PROTOCOL.md §5.1): the operator's PEM files, or a self-signed one
 * generated once and kept next to the store, so the fingerprint clients pin survives restarts.
 */

/** Where the certificate comes from: both files, or neither (self-signed). */
export interface RegistryTlsSource {
  readonly certFile?: string;
  readonly keyFile?: string;
}

export interface RegistryTlsMaterial extends PemPair {
  /** Lower-case hex SHA-256 of the leaf certificate's DER: what clients pin. */
  readonly fingerprint: string;
  /** `files`: the operator's; `stored`: generated earlier; `generated`: just now; `ephemeral`: in memory only. */
  readonly origin: 'files' | 'stored' | 'generated' | 'ephemeral';
  /** The certificate file, except for `ephemeral`. */
  readonly certPath?: string;
  readonly notAfter: Date;
}

export const GENERATED_CERT_FILE = 'registry-tls.crt';
export const GENERATED_KEY_FILE = 'registry-tls.key';

/** `-tls`, `-tls-cert`, `-tls-key` → a source, or undefined for plain TCP. */
export function registryTlsFromFlags(flags: {
  tls?: boolean;
  'tls-cert'?: string;
  'tls-key'?: string;
}): RegistryTlsSource | undefined {
  const certFile = flags['tls-cert'] || undefined;
  const keyFile = flags['tls-key'] || undefined;
  if (flags.tls !== true) {
    if (certFile !== undefined || keyFile !== undefined) {
      throw new PilotError(
        'invalid_argument',
        '-tls-cert and -tls-key need -tls',
        'add -tls to serve the registry over TLS',
      );
    }
    return undefined;
  }
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new PilotError(
      'invalid_argument',
      '-tls-cert and -tls-key go together: give both, or neither for a self-signed certificate',
    );
  }
  return certFile !== undefined && keyFile !== undefined ? { certFile, keyFile } : {};
}

/** Where a registry with this store keeps its generated certificate; undefined for `:memory:` and database URLs. */
export function generatedTlsPaths(storePath: string): { cert: string; key: string } | undefined {
  // A database URL has no directory: several processes behind one address need -tls-cert/-tls-key.
  if (storePath === ':memory:' || /^postgres(ql)?:\/\//i.test(storePath)) return undefined;
  const dir = dirname(storePath);
  return { cert: join(dir, GENERATED_CERT_FILE), key: join(dir, GENERATED_KEY_FILE) };
}

export async function loadRegistryTls(
  source: RegistryTlsSource,
  opts: { storePath: string; listenHost: string },
): Promise<RegistryTlsMaterial> {
  if (source.certFile !== undefined && source.keyFile !== undefined) {
    const pair = { cert: await readPem(source.certFile, 'certificate'), key: await readPem(source.keyFile, 'key') };
    return material(pair, 'files', source.certFile, source.keyFile);
  }
  const paths = generatedTlsPaths(opts.storePath);
  if (paths === undefined) return material(await generateSelfSigned(opts.listenHost), 'ephemeral');
  return loadOrCreate(paths, opts.listenHost);
}

/**
 * The certificate file is written last: a key without a certificate is what an interrupted
 * generation leaves, and is replaced; a certificate without its key is an operator's mistake.
 */
async function loadOrCreate(paths: { cert: string; key: string }, listenHost: string): Promise<RegistryTlsMaterial> {
  const cert = await readOptional(paths.cert);
  const key = await readOptional(paths.key);
  const hint = `remove ${paths.cert} and ${paths.key} to generate a new certificate (its fingerprint changes)`;
  if (cert !== undefined && key === undefined) {
    throw new PilotError('invalid_argument', `${paths.cert} exists but its key ${paths.key} is missing`, hint);
  }
  if (cert !== undefined && key !== undefined) {
    try {
      return material({ cert, key }, 'stored', paths.cert, paths.key);
    } catch (err) {
      throw new PilotError('invalid_argument', (err as Error).message, hint);
    }
  }
  const pair = await generateSelfSigned(listenHost);
  await ensureDir(dirname(paths.cert), 0o700);
  await writeFileAtomic(paths.key, pair.key, { mode: 0o600 });
  await writeFileAtomic(paths.cert, pair.cert, { mode: 0o644 });
  return material(pair, 'generated', paths.cert, paths.key);
}

/** Checks that the certificate parses and belongs to the key, and computes its fingerprint. */
function material(
  pair: PemPair,
  origin: RegistryTlsMaterial['origin'],
  certPath?: string,
  keyPath?: string,
): RegistryTlsMaterial {
  const certName = certPath ?? 'generated certificate';
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(pair.cert);
  } catch (err) {
    throw new PilotError('invalid_argument', `${certName} does not hold a PEM certificate: ${(err as Error).message}`);
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(pair.key);
  } catch (err) {
    throw new PilotError(
      'invalid_argument',
      `${keyPath ?? 'generated key'} does not hold a PEM private key: ${(err as Error).message}`,
    );
  }
  if (!cert.checkPrivateKey(key)) {
    throw new PilotError('invalid_argument', `${keyPath ?? 'the key'} is not the private key of ${certName}`);
  }
  return {
    ...pair,
    fingerprint: certificateFingerprint(cert.raw),
    origin,
    ...(certPath !== undefined ? { certPath } : {}),
    notAfter: new Date(cert.validTo),
  };
}

/** PEM files are small; anything larger is not what the operator meant to give. */
const MAX_PEM_BYTES = 1024 * 1024;

async function readPem(path: string, what: string): Promise<string> {
  try {
    return await readBounded(path);
  } catch (err) {
    if (err instanceof PilotError) throw err;
    throw new PilotError(
      'invalid_argument',
      `cannot read the TLS ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readBounded(path);
  } catch (err) {
    if (err instanceof PilotError) throw err;
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new PilotError('invalid_argument', `cannot read ${path}: ${(err as Error).message}`);
  }
}

async function readBounded(path: string): Promise<string> {
  const fh = await open(path, 'r');
  try {
    const { size } = await fh.stat();
    if (size > MAX_PEM_BYTES)
      throw new PilotError('invalid_argument', `${path} is too large for a PEM file (${size} bytes)`);
    return await fh.readFile('utf8');
  } finally {
    await fh.close();
  }
}
