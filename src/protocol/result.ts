/** Why a decoder refused its input. */
export type DecodeErrorCode =
  | 'truncated'
  | 'too_long'
  | 'bad_magic'
  | 'bad_checksum'
  | 'bad_value'
  | 'bad_json'
  | 'bad_text';

export class DecodeError extends Error {
  override readonly name = 'DecodeError';
  constructor(
    readonly code: DecodeErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export type DecodeResult<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly error: DecodeError };

export function ok<T>(value: T): DecodeResult<T> {
  return { ok: true, value };
}

/**
 * Decoders fail on every garbage datagram a peer sends, so the error skips the stack trace: it
 * would cost more than the decoding and says nothing the code and message do not.
 */
export function fail<T = never>(code: DecodeErrorCode, message: string): DecodeResult<T> {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  const error = new DecodeError(code, message);
  Error.stackTraceLimit = limit;
  return { ok: false, error };
}

/** Returns the value or throws the typed DecodeError (for callers that treat bad input as fatal). */
export function unwrap<T>(result: DecodeResult<T>): T {
  if (result.ok) return result.value;
  throw result.error;
}
