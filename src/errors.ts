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

/**
 * A failure the peer or the network caused (a reset, a timeout), made without capturing a stack:
 * the stack would only show the event loop's dispatch, and streams read `err.stack` when they are
 * destroyed, which costs more than the rest of closing a connection.
 */
export function remoteFailure(code: PilotErrorCode, message: string, hint?: string): PilotError {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    const err = new PilotError(code, message, hint);
    // Set, not formatted on first read (formatting runs the process's stack hooks, source maps included).
    err.stack = `${err.name}: ${message}`;
    return err;
  } finally {
    Error.stackTraceLimit = limit;
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

/**
 * The `code u16` of an IPC Error frame (PROTOCOL.md §8.2) for each kind of failure. The reference
 * daemon sends 1 for everything (its driver reads only the message), so 1 means "unspecified":
 * a client falls back to what the operation usually fails with. The numbers are stable: new kinds
 * get new numbers, and a number never changes meaning.
 */
export const IPC_ERROR_CODES: Readonly<Record<PilotErrorCode, number>> = Object.freeze({
  invalid_argument: 2,
  not_found: 3,
  already_exists: 4,
  refused: 5,
  untrusted: 6,
  timeout: 7,
  unavailable: 8,
  rate_limited: 9,
  too_large: 10,
  connection_failed: 11,
  protocol: 12,
  internal: 13,
  not_running: 14,
});

/** The reference's only code: the failure's kind is not said. */
export const IPC_ERROR_UNSPECIFIED = 1;

const BY_IPC_CODE: ReadonlyMap<number, PilotErrorCode> = new Map(
  (Object.entries(IPC_ERROR_CODES) as [PilotErrorCode, number][]).map(([code, n]) => [n, code]),
);

/** The IPC Error code for a failure. */
export function ipcErrorCode(code: PilotErrorCode): number {
  return IPC_ERROR_CODES[code];
}

/** The failure an IPC Error code names; undefined for 1 (unspecified) and numbers not in the table. */
export function pilotCodeOfIpc(code: number): PilotErrorCode | undefined {
  return BY_IPC_CODE.get(code);
}
