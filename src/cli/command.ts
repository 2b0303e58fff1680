import type { JsonValue } from '../protocol/json.js';
import type { FlagType, ParsedArgs } from './args.js';
import { socketPath } from './config-file.js';
import type { CliContext, DaemonClient } from './context.js';

/** What a command hands back to be printed; streaming commands print as they go and return nothing. */
export interface CommandResult {
  readonly data: JsonValue;
  /** Human text printed instead of the JSON payload when `--json` is off. */
  readonly text?: string;
  /** Prints nothing at all (e.g. `daemon status --check`). */
  readonly silent?: boolean;
  readonly exitCode?: number;
  /**
   * The run was cut short by Ctrl-C (SIGINT) and `data` is what was measured so far: printed as
   * usual (with `"interrupted": true` in the payload), then the exit status is 130.
   */
  readonly interrupted?: boolean;
}

export interface CommandSpec {
  /** Multi-word names use a space: `daemon start`. */
  readonly name: string;
  readonly args: readonly string[];
  readonly description: string;
  readonly returns: string;
  readonly flags: Readonly<Record<string, FlagType>>;
  /**
   * The command watches `ctx.interrupt` and, within 2 s of Ctrl-C, returns what it measured so far
   * (`interrupted: true`); other commands are abandoned on Ctrl-C with the error `interrupted`.
   */
  readonly interruptible?: boolean;
  /** How long an interruptible command may take after Ctrl-C (default 2 s). */
  readonly interruptGraceMs?: number;
  /** Runs, but is left out of the usage list and `context` (kept for scripts written for the reference). */
  readonly hidden?: boolean;
  /** `usage` is `usageLine(spec)`, for the hint of a usage error. */
  run(ctx: CliContext, args: ParsedArgs, usage: string): Promise<CommandResult | undefined>;
}

export function usageLine(spec: CommandSpec): string {
  return ['pilotctl', spec.name, ...spec.args].join(' ');
}

/** Connects to the daemon on the resolved socket, runs `fn`, and always closes the connection. */
export async function withDriver<T>(ctx: CliContext, fn: (driver: DaemonClient) => Promise<T>): Promise<T> {
  const driver = await ctx.connectDriver(await socketPath(ctx));
  try {
    return await fn(driver);
  } finally {
    await driver.close().catch(() => undefined);
  }
}
