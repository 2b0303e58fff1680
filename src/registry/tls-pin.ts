import { createHash, timingSafeEqual } from 'node:crypto';
import { PilotError } from '../errors.js';

/**
 * Certificate pinning for registry TLS (PROTOCOL.md §5.1): clients skip CA and hostname checks and
 * accept the registry only if its leaf certificate hashes to the pinned fingerprint.
 */

/** Lower-case hex SHA-256 of a certificate's DER encoding. */
export function certificateFingerprint(der: Uint8Array): string {
  return createHash('sha256').update(der).digest('hex');
}

/**
 * The canonical form of a fingerprint an operator typed: 64 hex digits, lower case. Upper case
 * and `:` separators (as `openssl x509 -fingerprint` prints them) are accepted.
 */
export function normalizeFingerprint(text: string, flag = 'registry fingerprint'): string {
  const hex = text.trim().replaceAll(':', '').toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(hex)) {
    throw new PilotError(
      'invalid_argument',
      `invalid ${flag} ${JSON.stringify(text.length > 100 ? `${text.slice(0, 100)}…` : text)}: expected the 64 hex digits of a SHA-256`,
      'the registry prints it at start: "registry TLS fingerprint <hex>"',
    );
  }
  return hex;
}

/** Compares a certificate against the pinned fingerprint (normalised) without early exit. */
export function matchesPin(der: Uint8Array, pinned: string): boolean {
  const actual = createHash('sha256').update(der).digest();
  const expected = Buffer.from(pinned, 'hex');
  return expected.length === actual.length && timingSafeEqual(actual, expected);
}
