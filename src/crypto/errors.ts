export type CryptoErrorCode =
  /** Identity file unreadable as JSON or with wrongly sized / non-base64 keys. */
  | 'bad_identity'
  /** Identity file whose public key does not belong to its private key. */
  | 'key_mismatch'
  /** A key or seed of the wrong length, or a public key the curve refuses. */
  | 'bad_key'
  /** The 64-bit send counter of a tunnel session is used up; a new session is needed. */
  | 'counter_exhausted';

export class CryptoError extends Error {
  override readonly name = 'CryptoError';
  constructor(
    readonly code: CryptoErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
