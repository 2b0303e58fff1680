import { stringifyJson, type JsonObject, type JsonValue } from '../protocol/json.js';

/** Where the CLI writes; `process.stdout` fits, and so does a string collector in tests. */
export interface Writer {
  write(chunk: string | Uint8Array): unknown;
  readonly isTTY?: boolean;
}

/** Converts any value (class instances, Buffers, undefined fields) into plain JSON data. */
export function toJson(value: unknown): JsonValue {
  if (value === undefined) return null;
  return JSON.parse(JSON.stringify(value) ?? 'null') as JsonValue;
}

function sortKeys(value: JsonValue): JsonValue {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value === null || typeof value !== 'object') return value;
  const out: JsonObject = {};
  for (const key of Object.keys(value).sort()) out[key] = sortKeys(value[key] as JsonValue);
  return out;
}

/** Compact JSON with object keys in byte order, as Go emits maps. */
export function goJson(value: JsonValue): string {
  return stringifyJson(sortKeys(value));
}

export function successEnvelope(data: JsonValue): string {
  return `${goJson({ data, status: 'ok' })}\n`;
}

/** What a failure prints: a PilotError, or a CLI-level outcome such as `interrupted`. */
export interface CliFailure {
  readonly code: string;
  readonly message: string;
  readonly hint?: string | undefined;
}

export function errorEnvelope(err: CliFailure): string {
  const body: JsonObject = { code: err.code, message: err.message, status: 'error' };
  if (err.hint !== undefined && err.hint !== '') body.hint = err.hint;
  return `${goJson(body)}\n`;
}

export function errorText(err: CliFailure): string {
  const hint = err.hint !== undefined && err.hint !== '' ? `hint: ${err.hint}\n` : '';
  return `error: ${err.message}\n${hint}`;
}

/** Aligned columns with a header row; the last column is not padded. */
export function formatTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return `${[line(headers), ...rows.map(line)].join('\n')}\n`;
}

export class Output {
  constructor(
    readonly stdout: Writer,
    readonly stderr: Writer,
    readonly json: boolean,
  ) {}

  /** The final result of a command: the envelope with `--json`, else `text` or indented JSON. */
  success(data: JsonValue, text?: string): void {
    if (this.json) {
      this.stdout.write(successEnvelope(data));
      return;
    }
    if (text !== undefined) {
      if (text !== '') this.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
      return;
    }
    if (data !== null && typeof data === 'object') this.stdout.write(`${JSON.stringify(sortKeys(data), null, 2)}\n`);
    else this.stdout.write(`${String(data)}\n`);
  }

  failure(err: CliFailure): void {
    this.stderr.write(this.json ? errorEnvelope(err) : errorText(err));
  }

  /** One bare JSON object per line, for streaming modes. */
  ndjson(value: JsonValue): void {
    this.stdout.write(`${goJson(value)}\n`);
  }

  /** Human progress text as a command runs; suppressed with `--json`. */
  info(text: string): void {
    if (!this.json) this.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
  }

  /** A progress bar redrawn in place on stderr, only when stderr is a terminal. */
  progress(label: string, total: number): ProgressBar {
    return new ProgressBar(this.stderr, label, total, this.stderr.isTTY === true);
  }
}

export class ProgressBar {
  #lastDraw = 0;
  constructor(
    private readonly out: Writer,
    private readonly label: string,
    private readonly total: number,
    private readonly enabled: boolean,
  ) {}

  update(done: number): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (now - this.#lastDraw < 100 && done < this.total) return;
    this.#lastDraw = now;
    const width = 30;
    const frac = this.total > 0 ? Math.min(1, done / this.total) : 1;
    const filled = Math.round(frac * width);
    this.out.write(
      `\r${this.label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(frac * 100).toFixed(0).padStart(3)}%`,
    );
  }

  finish(): void {
    if (this.enabled) this.out.write('\r\x1b[K');
  }
}
