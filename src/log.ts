import { pino, destination, type DestinationStream, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

/** JSON lines (default), or one human-readable line per entry, as the reference's `-log-format text`. */
export type LogFormat = 'json' | 'text';

export interface LogOptions {
  level?: LevelWithSilent;
  /** Component name put on every line (`registry`, `beacon`, `daemon`, …). */
  name?: string;
  /** File descriptor or path to write to; standard error by default. */
  destination?: number | string;
  format?: LogFormat;
}

const LEVEL_NAMES: Readonly<Record<number, string>> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO',
  40: 'WARN',
  50: 'ERROR',
  60: 'FATAL',
};
/** Fields every entry has, shown in the line's fixed part rather than as key=value. */
const FIXED = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'name']);

function textValue(v: unknown): string {
  if (typeof v === 'string') return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
  if (v !== null && typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

/** `2026-12-02T01:20:00.000Z INFO daemon: daemon ready node=2 socket=/tmp/pilot.sock` */
export function formatTextLine(entry: Record<string, unknown>): string {
  const time = typeof entry.time === 'number' ? new Date(entry.time).toISOString() : '-';
  const level = LEVEL_NAMES[entry.level as number] ?? String(entry.level);
  const name = typeof entry.name === 'string' ? `${entry.name}: ` : '';
  const fields = Object.entries(entry)
    .filter(([k, v]) => !FIXED.has(k) && v !== undefined)
    .map(([k, v]) => `${k}=${textValue(v)}`);
  return [time, level, `${name}${String(entry.msg ?? '')}`, ...fields].join(' ');
}

/** Turns pino's JSON lines into text lines on their way to the destination. */
function textStream(dest: DestinationStream): DestinationStream {
  return {
    write(line: string): void {
      let entry: Record<string, unknown>;
      try {
        entry = JSON.parse(line) as Record<string, unknown>;
      } catch {
        dest.write(line);
        return;
      }
      dest.write(`${formatTextLine(entry)}\n`);
    },
  };
}

/** Structured logs: JSON lines, or text lines with `format: 'text'`. */
export function createLogger(options: LogOptions = {}): Logger {
  const dest = destination({ dest: options.destination ?? 2, sync: true, mkdir: true });
  const stream = options.format === 'text' ? textStream(dest) : dest;
  return pino({ level: options.level ?? 'info', name: options.name, base: { pid: process.pid } }, stream);
}

/** A logger that drops everything (tests, libraries used without logging). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
