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
}

export interface CommandSpec {
  /** Multi-word names use a space: `daemon start`. */
  readonly name: string;
  readonly args: readonly string[];
  readonly description: string;
  readonly returns: string;
  readonly flags: Readonly<Record<string, FlagType>>;
  run(ctx: CliContext, args: ParsedArgs): Promise<CommandResult | undefined>;
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
