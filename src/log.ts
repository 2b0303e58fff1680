import { pino, destination, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

export interface LogOptions {
  level?: LevelWithSilent;
  /** Component name put on every line (`registry`, `beacon`, `daemon`, …). */
  name?: string;
  /** File descriptor or path to write to; standard error by default. */
  destination?: number | string;
}

/** Structured JSON logs (one object per line). */
export function createLogger(options: LogOptions = {}): Logger {
  const dest = destination({ dest: options.destination ?? 2, sync: true, mkdir: true });
  return pino({ level: options.level ?? 'info', name: options.name, base: { pid: process.pid } }, dest);
}

/** A logger that drops everything (tests, libraries used without logging). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
