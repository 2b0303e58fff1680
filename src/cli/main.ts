import { PilotError, toPilotError } from '../errors.js';
import { checkFlags, extractJsonFlag, parseArgs } from './args.js';
import { usageLine, type CommandSpec } from './command.js';
import { ALL_COMMANDS } from './commands/index.js';
import { contextCommand } from './commands/context.js';
import type { CliContext } from './context.js';

export const COMMANDS: readonly CommandSpec[] = [...ALL_COMMANDS, contextCommand(() => COMMANDS)];

const byName = new Map(COMMANDS.map((c) => [c.name, c]));

export function usage(): string {
  const lines = ['usage: pilotctl [--json] <command> [arguments] [--flags]', '', 'commands:'];
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  for (const c of COMMANDS) lines.push(`  ${c.name.padEnd(width)}  ${c.args.join(' ')}`.trimEnd());
  lines.push('', 'pilotctl help <command> describes one command; pilotctl context describes all of them as JSON.');
  return `${lines.join('\n')}\n`;
}

function commandHelp(spec: CommandSpec): string {
  return `usage: ${usageLine(spec)}\n\n${spec.description}\n\n--json result: ${spec.returns}\n`;
}

/** Finds the command named by the first one or two words; returns it with the number of words used. */
function lookupCommand(words: readonly string[]): [CommandSpec, number] | undefined {
  const two = words.length >= 2 ? byName.get(`${words[0]} ${words[1]}`) : undefined;
  if (two !== undefined) return [two, 2];
  const one = words[0] === undefined ? undefined : byName.get(words[0]);
  return one === undefined ? undefined : [one, 1];
}

function unknownCommand(words: readonly string[]): PilotError {
  const group = COMMANDS.filter((c) => c.name.startsWith(`${words[0]} `)).map((c) => c.name.split(' ')[1]);
  if (group.length > 0) {
    const given = words[1] === undefined ? `"${words[0]}" needs a subcommand` : `unknown command "${words[0]} ${words[1]}"`;
    return new PilotError('invalid_argument', given, `${words[0]} subcommands: ${group.join(', ')}`);
  }
  return new PilotError('invalid_argument', `unknown command ${JSON.stringify(words[0])}`, 'run "pilotctl help" for the list of commands');
}

/** Aborts and timer expiries from node APIs become the `timeout` code. */
export function cliError(err: unknown): PilotError {
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) {
    return new PilotError('timeout', err.message || 'operation timed out', undefined, { cause: err });
  }
  return toPilotError(err);
}

/** Runs one pilotctl invocation and returns its exit status (0 ok, 1 failure, 2 usage). */
export async function main(argv: readonly string[], makeContext: (json: boolean) => CliContext): Promise<number> {
  const { json, rest } = extractJsonFlag(argv);
  const ctx = makeContext(json);
  const first = rest[0];
  if (first === undefined) {
    ctx.out.stderr.write(usage());
    return 2;
  }
  if (first === 'help' || first === '--help' || first === '-h') {
    const found = lookupCommand(rest.slice(1));
    ctx.out.stdout.write(found === undefined ? usage() : commandHelp(found[0]));
    return 0;
  }
  const found = lookupCommand(rest);
  if (found === undefined) {
    const err = unknownCommand(rest);
    if (json) {
      ctx.out.failure(err);
      return 1;
    }
    ctx.out.stderr.write(`error: ${err.message}\n${err.hint !== undefined ? `hint: ${err.hint}\n` : ''}\n${usage()}`);
    return 2;
  }
  const [spec, words] = found;
  try {
    const args = parseArgs(rest.slice(words));
    if (args.flags.get('help') === 'true' && !('help' in spec.flags)) {
      ctx.out.stdout.write(commandHelp(spec));
      return 0;
    }
    checkFlags(spec.name, args, spec.flags);
    const result = await spec.run(ctx, args);
    if (result === undefined) return 0;
    if (result.silent !== true) ctx.out.success(result.data, result.text);
    return result.exitCode ?? 0;
  } catch (err) {
    ctx.out.failure(cliError(err));
    return 1;
  }
}
