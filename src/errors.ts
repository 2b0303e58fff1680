/**
 * The one error type that crosses layers. The code says what kind of failure it is; the CLI
 * prints it as text or as the `--json` error envelope `{"status":"error","code","message","hint"}`.
 */
export type PilotErrorCode =
  | 'invalid_argument'
  | 'not_running'
  | 'already_exists'
  | 'connection_failed'
  | 'not_found'
  | 'timeout'
  | 'untrusted'
  | 'refused'
  | 'unavailable'
  | 'rate_limited'
  | 'too_large'
  | 'protocol'
  | 'internal';

export class PilotError extends Error {
  override readonly name = 'PilotError';
  constructor(
    readonly code: PilotErrorCode,
    message: string,
    readonly hint?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function isPilotError(err: unknown): err is PilotError {
  return err instanceof PilotError;
}

/** Wraps any thrown value into a PilotError, keeping an existing one as it is. */
export function toPilotError(err: unknown, fallback: PilotErrorCode = 'internal'): PilotError {
  if (err instanceof PilotError) return err;
  if (err instanceof Error) return new PilotError(fallback, err.message, undefined, { cause: err });
  return new PilotError(fallback, String(err));
}
