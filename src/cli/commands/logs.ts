import { open, stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { PilotError } from '../../errors.js';
import { formatTextLine } from '../../log.js';
import type { JsonObject } from '../../protocol/json.js';
import { boolFlag, countFlag } from '../args.js';
import type { CommandSpec } from '../command.js';

const FOLLOW_POLL_MS = 200;
/** The tail is read from at most this many bytes before the end of the file. */
const TAIL_WINDOW = 4 * 1024 * 1024;

/** A log line as a person reads it: JSON entries formatted as in `-log-format text`, others as they are. */
function readable(line: string): string {
  try {
    const entry: unknown = JSON.parse(line);
    if (entry !== null && typeof entry === 'object' && !Array.isArray(entry))
      return formatTextLine(entry as Record<string, unknown>);
  } catch {
    // not JSON: shown as written
  }
  return line;
}

function entry(line: string): JsonObject {
  try {
    const value: unknown = JSON.parse(line);
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) return value as JsonObject;
  } catch {
    // not JSON
  }
  return { msg: line };
}

async function readRange(path: string, from: number, to: number): Promise<string> {
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(Math.max(0, to - from));
    await fh.read(buf, 0, buf.length, from);
    return buf.toString('utf8');
  } finally {
    await fh.close();
  }
}

export const logs: CommandSpec = {
  name: 'logs',
  args: ['[-f | --follow]', '[--lines n]', '[--rendezvous]'],
  description:
    "Shows the end of the daemon's log (pilot.log; --rendezvous: the local rendezvous' log), one readable line per entry; -f keeps following it until Ctrl-C.",
  returns: '{entries: [log objects]}; with --follow one log object per line',
  flags: { follow: 'bool', lines: 'string', rendezvous: 'bool' },
  interruptible: true,
  async run(ctx, args, usage) {
    const follow = boolFlag(args, 'follow') || args.positionals.includes('-f');
    const extra = args.positionals.filter((p) => p !== '-f');
    if (extra.length > 0)
      throw new PilotError('invalid_argument', `unexpected argument ${JSON.stringify(extra[0])}`, `usage: ${usage}`);
    const count = countFlag(args, 'lines', 50, { min: 1, max: 100_000 });
    const path = boolFlag(args, 'rendezvous') ? ctx.paths.rendezvousLogFile : ctx.paths.logFile;
    const size = await stat(path).then(
      (s) => s.size,
      () => undefined,
    );
    if (size === undefined)
      throw new PilotError(
        'not_found',
        `no log at ${path}`,
        'the log is written by a daemon started with: pilotctl daemon start',
      );
    const text = await readRange(path, Math.max(0, size - TAIL_WINDOW), size);
    const lines = text.split('\n').filter((l) => l !== '');
    // A window that starts mid-line drops that partial first line.
    const tail = (size > TAIL_WINDOW ? lines.slice(1) : lines).slice(-count);
    if (!follow) {
      return { data: { entries: tail.map(entry) }, text: tail.map(readable).join('\n') };
    }
    const print = (line: string): void => (ctx.out.json ? ctx.out.ndjson(entry(line)) : ctx.out.info(readable(line)));
    tail.forEach(print);
    let at = size;
    let partial = '';
    while (!ctx.interrupt.aborted) {
      await sleep(FOLLOW_POLL_MS, undefined, { signal: ctx.interrupt }).catch(() => undefined);
      const now = await stat(path).then(
        (s) => s.size,
        () => at,
      );
      if (now < at) at = 0; // truncated or replaced: start over
      if (now === at) continue;
      const chunk = partial + (await readRange(path, at, now));
      at = now;
      const parts = chunk.split('\n');
      partial = parts.pop() ?? '';
      parts.filter((l) => l !== '').forEach(print);
    }
    return { data: null, silent: true, interrupted: true };
  },
};
