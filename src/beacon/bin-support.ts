import type { LevelWithSilent } from 'pino';
import { isPilotError, PilotError } from '../errors.js';

/** Process plumbing shared by the `pilot-beacon` and `pilot-rendezvous` entry points. */

const LOG_LEVELS: readonly LevelWithSilent[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

export function parseLogLevel(value: string | undefined): LevelWithSilent {
  if (value === undefined || value === '') return 'info';
  const level = LOG_LEVELS.find((l) => l === value.toLowerCase());
  if (!level)
    throw new PilotError(
      'invalid_argument',
      `-log-level must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(value)}`,
    );
  return level;
}

/** Closes on the first SIGINT/SIGTERM and exits 0; a second signal exits at once. */
export function closeOnSignal(close: () => Promise<void>): void {
  let stopping = false;
  const onSignal = (): void => {
    if (stopping) process.exit(1);
    stopping = true;
    close().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`error while closing: ${err instanceof Error ? err.message : String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', onSignal).on('SIGTERM', onSignal);
}

/** Prints the error like the Go tools (flag errors exit 2, the rest 1). */
export function exitWithError(err: unknown): never {
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`error: ${message}\n`);
  if (isPilotError(err) && err.hint) process.stderr.write(`hint: ${err.hint}\n`);
  process.exit(isPilotError(err) && err.code === 'invalid_argument' ? 2 : 1);
}
