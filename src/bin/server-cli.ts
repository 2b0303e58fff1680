import type { LevelWithSilent } from 'pino';
import {
  flagUsage,
  LOG_FORMAT_FLAG,
  parseGoFlagsWithConfig,
  type FlagSpec,
  type FlagValues,
} from '../config/go-flags.js';
import { isPilotError, PilotError } from '../errors.js';
import { versionLine } from '../version.js';

/** Process plumbing shared by the server executables (pilot-registry, pilot-beacon, pilot-rendezvous). */

/** Flags every server takes, after its own. */
export const SERVER_FLAGS = {
  'log-level': { kind: 'string', help: 'trace, debug, info, warn, error, silent (default "info")' },
  'log-format': LOG_FORMAT_FLAG,
  config: {
    kind: 'string',
    help: 'JSON file whose keys are flag names (dashes or underscores); the command line wins',
  },
  help: { kind: 'bool', help: 'show this help' },
  version: { kind: 'bool', help: 'print the version and exit' },
} as const satisfies FlagSpec;

/**
 * Parses the command line (and a -config file) as Go's flag package would. `undefined` when
 * -version or -help was answered; an unexpected positional argument is a usage error.
 */
export function parseServerArgs<S extends FlagSpec>(
  command: string,
  argv: readonly string[],
  spec: S,
): FlagValues<S> | undefined {
  const { flags, positionals } = parseGoFlagsWithConfig(argv, spec);
  if (flags.version) {
    process.stdout.write(`${versionLine(command)}\n`);
    return undefined;
  }
  if (flags.help) {
    process.stdout.write(`${flagUsage(command, spec)}\n`);
    return undefined;
  }
  if (positionals.length > 0) throw new PilotError('invalid_argument', `unexpected argument: ${positionals[0]}`);
  return flags;
}

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
