import { PilotError, type PilotErrorCode } from '../errors.js';
import { DaemonReplyError } from './ipc-client.js';

/** Turns a daemon Error reply into a PilotError whose code reflects what the message says. */
export function fromDaemonError(err: unknown, context: string, fallback: PilotErrorCode): PilotError {
  if (!(err instanceof DaemonReplyError)) {
    return err instanceof PilotError ? err : new PilotError('internal', `${context}: ${String(err)}`, undefined, { cause: err });
  }
  return new PilotError(codeFor(err.message, fallback), `${context}: daemon: ${err.message}`, undefined, { cause: err });
}

function codeFor(message: string, fallback: PilotErrorCode): PilotErrorCode {
  const text = message.toLowerCase();
  if (text.includes('trust')) return 'untrusted';
  if (text.includes('already bound') || text.includes('already in use')) return 'already_exists';
  // A pilot-ts node says why it refused a connection: busy (try later) is not "nobody listens".
  if (text.includes('port full') || text.includes('connection table full')) return 'unavailable';
  if (text.includes('no listener')) return 'refused';
  if (fallback !== 'connection_failed' && text.includes('not found')) return 'not_found';
  return fallback;
}
