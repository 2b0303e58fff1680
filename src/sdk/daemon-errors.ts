import { pilotCodeOfIpc, PilotError, type PilotErrorCode } from '../errors.js';
import { DaemonReplyError } from './ipc-client.js';

/**
 * Turns a daemon Error reply into a PilotError. The code comes from the frame's code number
 * (IPC_ERROR_CODES), never from the message; 1 (what the reference always sends) and numbers this
 * SDK does not know give `fallback`, what the operation usually fails with.
 */
export function fromDaemonError(err: unknown, context: string, fallback: PilotErrorCode): PilotError {
  if (!(err instanceof DaemonReplyError)) {
    return err instanceof PilotError
      ? err
      : new PilotError('internal', `${context}: ${String(err)}`, undefined, { cause: err });
  }
  return new PilotError(pilotCodeOfIpc(err.daemonCode) ?? fallback, `${context}: daemon: ${err.message}`, undefined, {
    cause: err,
  });
}
