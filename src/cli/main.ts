import { PilotError, toPilotError } from '../errors.js';
import { checkFlags, extractJsonFlag, isUsageError, parseArgs, UsageError } from './args.js';
import { usageLine, type CommandResult, type CommandSpec } from './command.js';
import { ALL_COMMANDS } from './commands/index.js';
import { contextCommand, versionCommand } from './commands/context.js';
import { InterruptedError, type CliContext } from './context.js';

export const COMMANDS: readonly CommandSpec[] = [
  ...ALL_COMMANDS,
  versionCommand,
  contextCommand(() => COMMANDS.filter((c) => !c.hidden)),
];

const byName = new Map(COMMANDS.map((c) => [c.name, c]));

/** Exit statuses, the same with and without `--json`. */
export const EXIT = { ok: 0, failure: 1, usage: 2, interrupted: 130 } as const;

const HELP_WORDS = new Set(['-h', '--help', 'help']);

function listLines(specs: readonly CommandSpec[], strip = ''): string[] {
  const name = (c: CommandSpec): string => c.name.slice(strip.length);
  const width = Math.max(...specs.map((c) => name(c).length));
  return specs.map((c) => `  ${name(c).padEnd(width)}  ${c.args.join(' ')}`.trimEnd());
}

export function usage(): string {
  const lines = ['usage: pilotctl [--json] <command> [arguments] [--flags]', '', 'commands:'];
  lines.push(...listLines(COMMANDS.filter((c) => !c.hidden)));
  lines.push(
    '',
    'pilotctl <command> -h (or pilotctl help <command>) describes one command or group; pilotctl context describes all of them as JSON.',
    'exit status: 0 success, 1 failure, 2 usage error, 130 interrupted (Ctrl-C).',
  );
  return `${lines.join('\n')}\n`;
}

function commandHelp(spec: CommandSpec): string {
  return `usage: ${usageLine(spec)}\n\n${spec.description}\n\n--json result: ${spec.returns}\n`;
}

/** The commands of a group such as `daemon` or `task` (names `<group> <sub>`). */
function groupMembers(group: string): CommandSpec[] {
  return COMMANDS.filter((c) => !c.hidden && c.name.startsWith(`${group} `));
}

function groupHelp(group: string, members: readonly CommandSpec[]): string {
  const lines = [
    `usage: pilotctl ${group} <subcommand> [arguments] [--flags]`,
    '',
    'subcommands:',
    ...listLines(members, `${group} `),
  ];
  for (const c of members) lines.push('', `pilotctl ${c.name}:`, `  ${c.description}`);
  lines.push('', `pilotctl ${group} <subcommand> -h describes one of them.`);
  return `${lines.join('\n')}\n`;
}

/** Finds the command named by the first one or two words; returns it with the number of words used. */
function lookupCommand(words: readonly string[]): [CommandSpec, number] | undefined {
  const two = words.length >= 2 ? byName.get(`${words[0]} ${words[1]}`) : undefined;
  if (two !== undefined) return [two, 2];
  const one = words[0] === undefined ? undefined : byName.get(words[0]);
  return one === undefined ? undefined : [one, 1];
}

/** Edit distance with adjacent transpositions counted once (`pign` is one step from `ping`). */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  const at = (i: number, j: number): number => d[i]?.[j] ?? 0;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, at(i - 2, j - 2) + 1);
      (d[i] as number[])[j] = v;
    }
  }
  return at(a.length, b.length);
}

/** The closest of `candidates` to `word`, if it is close enough to be a typo. */
export function nearest(word: string, candidates: readonly string[]): string | undefined {
  const limit = word.length <= 3 ? 1 : 2;
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const dist = editDistance(word.toLowerCase(), c);
    if (dist < bestDistance) {
      best = c;
      bestDistance = dist;
    }
  }
  return bestDistance <= limit ? best : undefined;
}

function topLevelNames(): string[] {
  return [...new Set([...COMMANDS.filter((c) => !c.hidden).map((c) => c.name.split(' ')[0] as string), 'help'])];
}

function unknownCommand(words: readonly string[]): UsageError {
  const first = words[0] ?? '';
  const members = groupMembers(first);
  if (members.length > 0) {
    const subs = members.map((c) => c.name.split(' ')[1] as string);
    if (words[1] === undefined)
      return new UsageError(
        `"${first}" needs a subcommand`,
        `${first} subcommands: ${subs.join(', ')} (pilotctl ${first} -h describes them)`,
      );
    const guess = nearest(words[1], subs);
    return new UsageError(
      `unknown command "${first} ${words[1]}"`,
      guess !== undefined
        ? `did you mean "pilotctl ${first} ${guess}"? (${first} subcommands: ${subs.join(', ')})`
        : `${first} subcommands: ${subs.join(', ')}`,
    );
  }
  const guess = nearest(first, topLevelNames());
  if (guess !== undefined)
    return new UsageError(
      `unknown command ${JSON.stringify(first)}`,
      `did you mean "pilotctl ${guess}"? (pilotctl help lists the commands)`,
    );
  return new UsageError(
    `unknown command ${JSON.stringify(first)}`,
    'run "pilotctl help" for the list of commands',
    true,
  );
}

/** `pilotctl help [words…]`: the whole usage, one group, or one command. */
function helpText(words: readonly string[]): string {
  if (words.length === 0) return usage();
  const found = lookupCommand(words);
  if (found !== undefined && found[1] === words.length) return commandHelp(found[0]);
  const members = words.length === 1 ? groupMembers(words[0] as string) : [];
  if (members.length > 0) return groupHelp(words[0] as string, members);
  if (found !== undefined)
    throw new UsageError(
      `unexpected ${JSON.stringify(words[found[1]])} after "help ${found[0].name}"`,
      `run: pilotctl help ${found[0].name}`,
    );
  throw unknownCommand(words);
}

/** Aborts and timer expiries from node APIs become the `timeout` code. */
export function cliError(err: unknown): PilotError {
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) {
    return new PilotError('timeout', err.message || 'operation timed out', undefined, { cause: err });
  }
  return toPilotError(err);
}

/**
 * Settles like `run`, or rejects with InterruptedError when Ctrl-C comes; a command that watches
 * the interrupt itself gets `graceMs` to hand back what it measured.
 */
function untilInterrupted<T>(run: Promise<T>, signal: AbortSignal, graceMs: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const onAbort = (): void => {
      if (graceMs <= 0) reject(new InterruptedError());
      else timer = setTimeout(() => reject(new InterruptedError()), graceMs);
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    run.then(resolve, reject).finally(() => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    });
  });
}

/** How long a command that watches Ctrl-C may take to stop and print what it has. */
const INTERRUPT_GRACE_MS = 2000;

/** Help text on stdout; with --json inside the envelope, as `{"help": text}`. */
function printHelp(ctx: CliContext, text: string): number {
  if (ctx.out.json) ctx.out.success({ help: text });
  else ctx.out.stdout.write(text);
  return EXIT.ok;
}

async function dispatch(ctx: CliContext, rest: readonly string[]): Promise<number> {
  const first = rest[0];
  if (first === undefined) {
    if (ctx.out.json) throw new UsageError('no command given', 'run "pilotctl help" for the list of commands');
    ctx.out.stderr.write(usage());
    return EXIT.usage;
  }
  if (HELP_WORDS.has(first)) return printHelp(ctx, helpText(rest.slice(1).filter((w) => !HELP_WORDS.has(w))));
  const found = first === '--version' ? lookupCommand(['version']) : lookupCommand(rest);
  if (found === undefined) {
    if (groupMembers(first).length > 0 && rest[1] !== undefined && HELP_WORDS.has(rest[1]))
      return printHelp(ctx, groupHelp(first, groupMembers(first)));
    throw unknownCommand(rest);
  }
  const [spec, words] = found;
  const args = parseArgs(rest.slice(words));
  if ((args.flags.get('help') === 'true' && !('help' in spec.flags)) || args.positionals.includes('-h'))
    return printHelp(ctx, commandHelp(spec));
  checkFlags(spec.name, args, spec.flags);
  const result: CommandResult | undefined = await untilInterrupted(
    spec.run(ctx, args, usageLine(spec)),
    ctx.interrupt,
    spec.interruptible === true ? (spec.interruptGraceMs ?? INTERRUPT_GRACE_MS) : 0,
  );
  if (result === undefined) return ctx.interrupt.aborted ? EXIT.interrupted : EXIT.ok;
  if (result.silent !== true) ctx.out.success(result.data, result.text);
  if (result.interrupted === true) return EXIT.interrupted;
  return result.exitCode ?? EXIT.ok;
}

/**
 * Runs one pilotctl invocation and returns its exit status: 0 success, 1 failure, 2 usage error
 * (with or without `--json`), 130 interrupted by Ctrl-C.
 */
export async function main(argv: readonly string[], makeContext: (json: boolean) => CliContext): Promise<number> {
  const { json, rest } = extractJsonFlag(argv);
  const ctx = makeContext(json);
  try {
    return await dispatch(ctx, rest);
  } catch (err) {
    if (err instanceof InterruptedError || ctx.interrupt.aborted) {
      ctx.out.failure({ code: 'interrupted', message: 'interrupted' });
      return EXIT.interrupted;
    }
    const e = cliError(err);
    ctx.out.failure(e);
    if (!isUsageError(err)) return EXIT.failure;
    if (!json && err.showUsage) ctx.out.stderr.write(`\n${usage()}`);
    return EXIT.usage;
  }
}
