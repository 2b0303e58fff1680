import { writeFileSync } from 'node:fs';
import { it } from 'node:test';
import type { Proc } from './harness.js';

/**
 * Named checks and the run's summary. Each check is one node:test case; a check whose
 * prerequisites did not pass is skipped with their names, so a failure points at what broke
 * instead of cascading.
 */

export type Status = 'pass' | 'fail' | 'skip';

interface CheckRecord {
  readonly suite: string;
  readonly name: string;
  readonly status: Status;
  readonly seconds: number;
  readonly note?: string;
}

const records: CheckRecord[] = [];
/** Seconds from `handshake` until both sides list each other as trusted, by "<suite> <direction>". */
export const handshakeSeconds: Record<string, number> = {};
/** Echo throughput in MB/s (10^6 bytes per second: bytes sent / time until all were echoed back). */
export const benchMBps: Record<string, number> = {};
/** Transport counters of the bench connections (sender and echo side), from the daemons' conn_list. */
export const benchTransport: Record<string, unknown> = {};
/** CPU seconds and packets of each daemon over the idle window after many closed connections. */
export const idleSamples: Record<string, unknown> = {};

const round = (n: number, d = 2): number => Math.round(n * 10 ** d) / 10 ** d;

export interface CheckOptions {
  /** Checks (by name, in this suite) that must have passed. */
  readonly needs?: readonly string[];
  /** Default 60 s. */
  readonly timeoutMs?: number;
  /** Processes whose recent warnings and errors are appended to a failure. */
  readonly logs?: () => readonly (Proc | undefined)[];
}

export class Suite {
  readonly #status = new Map<string, Status>();
  readonly #defined = new Set<string>();

  constructor(readonly label: string) {}

  get failed(): number {
    return [...this.#status.values()].filter((s) => s === 'fail').length;
  }

  passed(name: string): boolean {
    return this.#status.get(name) === 'pass';
  }

  check(name: string, opts: CheckOptions, fn: () => Promise<void>): void {
    if (this.#defined.has(name)) throw new Error(`check defined twice: ${name}`);
    for (const n of opts.needs ?? [])
      if (!this.#defined.has(n)) throw new Error(`check "${name}" needs "${n}", which is not defined before it`);
    this.#defined.add(name);
    const timeoutMs = opts.timeoutMs ?? 60_000;
    it(name, { timeout: timeoutMs + 15_000 }, async (t) => {
      const missing = (opts.needs ?? []).filter((n) => this.#status.get(n) !== 'pass');
      if (missing.length > 0) {
        const note = `needs: ${missing.join('; ')}`;
        this.#record(name, 'skip', 0, note);
        // Skipped because a check it builds on failed (that failure is the one reported), not run on a broken setup.
        t.skip(note);
        return;
      }
      const started = performance.now();
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          fn(),
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error(`check timed out after ${timeoutMs / 1000} s`)), timeoutMs);
          }),
        ]);
        this.#record(name, 'pass', (performance.now() - started) / 1000);
      } catch (err) {
        const seconds = (performance.now() - started) / 1000;
        const message = err instanceof Error ? err.message : String(err);
        this.#record(
          name,
          'fail',
          seconds,
          message
            .split('\n')
            .filter((l) => l.trim() !== '')
            .slice(0, 2)
            .join(' | '),
        );
        const logs = (opts.logs?.() ?? [])
          .filter((p): p is Proc => p !== undefined)
          .map((p) => logTail(p))
          .join('\n');
        const wrapped = new Error(logs === '' ? message : `${message}\n${logs}`);
        if (err instanceof Error && err.stack)
          wrapped.stack = `${wrapped.message}\n${err.stack.split('\n').slice(1).join('\n')}`;
        throw wrapped;
      } finally {
        clearTimeout(timer);
      }
    });
  }

  #record(name: string, status: Status, seconds: number, note?: string): void {
    this.#status.set(name, status);
    records.push({ suite: this.label, name, status, seconds: round(seconds), ...(note !== undefined ? { note } : {}) });
    const head = status === 'pass' ? 'ok  ' : status === 'fail' ? 'FAIL' : 'skip';
    process.stderr.write(
      `[interop] ${new Date().toISOString().slice(11, 23)} ${head} ${this.label} › ${name} (${seconds.toFixed(1)} s)${note !== undefined ? ` — ${note.slice(0, 300)}` : ''}\n`,
    );
  }
}

function logTail(proc: Proc, n = 12): string {
  const interesting = proc.lines.filter((l) => /level=(WARN|ERROR)|"level":(40|50|60)|error|fail|refus/i.test(l));
  return `--- ${proc.name} (${proc.logPath}), last warnings/errors:\n${interesting.slice(-n).join('\n') || '(none)'}`;
}

export function summary(extra: Record<string, unknown> = {}): Record<string, unknown> {
  const count = (list: readonly CheckRecord[], st: Status): number => list.filter((r) => r.status === st).length;
  const suites: Record<string, { passed: number; failed: number; skipped: number }> = {};
  for (const label of new Set(records.map((r) => r.suite))) {
    const mine = records.filter((r) => r.suite === label);
    suites[label] = { passed: count(mine, 'pass'), failed: count(mine, 'fail'), skipped: count(mine, 'skip') };
  }
  const failures = Object.fromEntries(
    records.filter((r) => r.status === 'fail').map((r) => [`${r.suite} › ${r.name}`, (r.note ?? '').slice(0, 300)]),
  );
  const skippedBecause: Record<string, number> = {};
  for (const r of records.filter((x) => x.status === 'skip')) {
    const k = `${r.suite} › ${r.note ?? ''}`;
    skippedBecause[k] = (skippedBecause[k] ?? 0) + 1;
  }
  return {
    interop: 'summary',
    ...extra,
    passed: count(records, 'pass'),
    failed: count(records, 'fail'),
    skipped: count(records, 'skip'),
    suites,
    failures,
    skipped_because: skippedBecause,
    handshake_seconds: handshakeSeconds,
    bench_MBps: benchMBps,
    bench_transport: benchTransport,
    idle_after_closed_connections: idleSamples,
  };
}

/** One JSON line: to $PILOT_INTEROP_SUMMARY (the runner prints it last) or to stdout. */
export function emitSummary(extra: Record<string, unknown> = {}): void {
  const line = JSON.stringify(summary(extra));
  const file = process.env.PILOT_INTEROP_SUMMARY;
  if (file !== undefined && file !== '') writeFileSync(file, `${line}\n`);
  else process.stdout.write(`${line}\n`);
}
