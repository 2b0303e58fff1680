import { randomBytes, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { ensureDir, writeFileAtomic } from './atomic-file.js';
import { fromBase64, toBase64 } from './base64.js';
import { bytesEqual, concatBytes } from './bytes.js';
import {
  ED25519_PUBLIC_KEY_SIZE,
  ED25519_SEED_SIZE,
  ed25519PrivateKeyFromSeed,
  ed25519RawPublicKey,
  ed25519Sign,
  ed25519Verify,
} from './ed25519.js';
import { CryptoError } from './errors.js';

/** A node's long-term Ed25519 key pair (PROTOCOL.md §10.2). */
export class Identity {
  readonly #seed: Uint8Array;
  readonly #privateKey: KeyObject;
  /** Raw 32-byte public key. */
  readonly publicKey: Uint8Array;
  /** Standard base64 of the public key, as the registry and handshakes carry it. */
  readonly publicKeyBase64: string;

  private constructor(seed: Uint8Array) {
    this.#seed = new Uint8Array(seed);
    this.#privateKey = ed25519PrivateKeyFromSeed(this.#seed);
    this.publicKey = ed25519RawPublicKey(this.#privateKey);
    this.publicKeyBase64 = toBase64(this.publicKey);
  }

  static generate(): Identity {
    return new Identity(randomBytes(ED25519_SEED_SIZE));
  }

  static fromSeed(seed: Uint8Array): Identity {
    return new Identity(seed);
  }

  /** The 32-byte seed (secret). */
  seed(): Uint8Array {
    return new Uint8Array(this.#seed);
  }

  sign(message: Uint8Array): Uint8Array {
    return ed25519Sign(this.#privateKey, message);
  }
}

/** Verifies an Ed25519 signature; false for any malformed input. */
export function verifySignature(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  return ed25519Verify(publicKey, message, signature);
}

/** The identity file text: Go's MarshalIndent(…, "", "  ") output, no trailing newline. */
export function encodeIdentityFile(identity: Identity): string {
  const privateKey = toBase64(concatBytes(identity.seed(), identity.publicKey));
  return JSON.stringify({ private_key: privateKey, public_key: identity.publicKeyBase64 }, null, 2);
}

/** Parses an identity file; throws CryptoError 'bad_identity' or 'key_mismatch'. */
export function decodeIdentityFile(text: string): Identity {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (cause) {
    throw new CryptoError('bad_identity', 'identity file is not valid JSON', { cause });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new CryptoError('bad_identity', 'identity file is not a JSON object');
  }
  const fields = parsed as Record<string, unknown>;
  const priv = decodeKeyField(fields, 'private_key', ED25519_SEED_SIZE + ED25519_PUBLIC_KEY_SIZE);
  const pub = decodeKeyField(fields, 'public_key', ED25519_PUBLIC_KEY_SIZE);
  const identity = Identity.fromSeed(priv.subarray(0, ED25519_SEED_SIZE));
  // The Go reference compares against the second half of private_key; we also check it against the seed.
  if (!bytesEqual(priv.subarray(ED25519_SEED_SIZE), pub) || !bytesEqual(identity.publicKey, pub)) {
    throw new CryptoError('key_mismatch', 'identity file corrupted: public key does not match private key');
  }
  return identity;
}

function decodeKeyField(fields: Record<string, unknown>, name: string, size: number): Uint8Array {
  const value = fields[name];
  if (typeof value !== 'string')
    throw new CryptoError('bad_identity', `identity file: ${name} missing or not a string`);
  const bytes = fromBase64(value);
  if (bytes === undefined) throw new CryptoError('bad_identity', `identity file: ${name} is not standard base64`);
  if (bytes.length !== size)
    throw new CryptoError('bad_identity', `identity file: ${name} must be ${size} bytes, got ${bytes.length}`);
  return bytes;
}

/** Writes the identity file atomically (mode 0600, parent directory created 0700). */
export async function saveIdentity(
  path: string,
  identity: Identity,
  options: { exclusive?: boolean } = {},
): Promise<void> {
  await ensureDir(dirname(path), 0o700);
  await writeFileAtomic(path, encodeIdentityFile(identity), { mode: 0o600, exclusive: options.exclusive ?? false });
}

/** Reads the identity file; undefined if it does not exist. Malformed content throws CryptoError. */
export async function loadIdentity(path: string): Promise<Identity | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return undefined;
    throw err;
  }
  return decodeIdentityFile(text);
}

/**
 * Loads the identity at `path`, or generates and saves one if the file is missing.
 * An existing file is never replaced, even when it is malformed or another process creates it concurrently.
 */
export async function loadOrCreateIdentity(path: string): Promise<Identity> {
  const existing = await loadIdentity(path);
  if (existing !== undefined) return existing;
  const identity = Identity.generate();
  try {
    await saveIdentity(path, identity, { exclusive: true });
  } catch (err) {
    if (!isErrno(err, 'EEXIST')) throw err;
    const winner = await loadIdentity(path);
    if (winner === undefined) throw err;
    return winner;
  }
  return identity;
}

function isErrno(err: unknown, code: string): boolean {
  return err instanceof Error && (err as NodeJS.ErrnoException).code === code;
}
