import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ensureDir, removeStaleTemps, writeFileAtomic } from '../../crypto/atomic-file.js';
import { isTaskStatus, isValidTaskId, type TaskStatus } from '../../protocol/tasksubmit.js';

/**
 * The task files of PROTOCOL.md §9.5 under `<home>/tasks/`: `received/<id>.json`,
 * `submitted/<id>.json`, `results/<id>_<file>`. Names are built only from validated task ids and
 * validated basenames, so nothing a peer sends can point outside these directories.
 */

export type TaskCategory = 'received' | 'submitted';

/** Field order of the reference's struct (MarshalIndent with two spaces). */
export interface TaskFile {
  task_id: string;
  task_description: string;
  created_at: string;
  status: TaskStatus;
  status_justification: string;
  from: string;
  to: string;
  accepted_at?: string;
  staged_at?: string;
  execute_started_at?: string;
  completed_at?: string;
  time_idle_ms?: number;
  time_staged_ms?: number;
  time_cpu_ms?: number;
}

const ORDER: readonly (keyof TaskFile)[] = [
  'task_id',
  'task_description',
  'created_at',
  'status',
  'status_justification',
  'from',
  'to',
  'accepted_at',
  'staged_at',
  'execute_started_at',
  'completed_at',
  'time_idle_ms',
  'time_staged_ms',
  'time_cpu_ms',
];

/** Result files: allowed extensions (lower-cased) of the reference's CLI, now also enforced by the receiver. */
export const ALLOWED_RESULT_EXTENSIONS: ReadonlySet<string> = new Set([
  '.md',
  '.txt',
  '.rtf',
  '.docx',
  '.pdf',
  '.pptx',
  '.pth',
  '.pt',
  '.onnx',
  '.h5',
  '.pb',
  '.ckpt',
  '.safetensors',
  '.bin',
  '.csv',
  '.parquet',
  '.xlsx',
  '.xls',
  '.jpg',
  '.jpeg',
  '.png',
  '.svg',
  '.gif',
  '.webp',
]);

/** Largest result file accepted (the frame limit is 16 MiB of base64). */
export const MAX_RESULT_FILE_BYTES = 12 * 1024 * 1024;
export const MAX_DESCRIPTION_BYTES = 64 * 1024;
export const MAX_JUSTIFICATION_BYTES = 4096;

/** Why a result file name is refused, or undefined when it is a plain basename with an allowed extension. */
export function resultFilenameError(name: string): string | undefined {
  if (name === '' || name.length > 200) return 'file name must be 1-200 characters';
  if (
    name.includes('/') ||
    name.includes('\\') ||
    name.includes('\0') ||
    name.startsWith('.') ||
    hasControlCharacter(name)
  ) {
    return `file name ${JSON.stringify(name)} is not a plain file name`;
  }
  const dot = name.lastIndexOf('.');
  const ext = dot < 0 ? '' : name.slice(dot).toLowerCase();
  if (!ALLOWED_RESULT_EXTENSIONS.has(ext))
    return `file extension ${JSON.stringify(ext || name)} is not allowed for results (allowed: ${[...ALLOWED_RESULT_EXTENSIONS].join(' ')})`;
  return undefined;
}

export function isoTime(ms: number): string {
  return new Date(ms).toISOString();
}

/** Unix ms of an RFC 3339 field, or undefined. */
export function msOf(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const ms = Date.parse(text);
  return Number.isFinite(ms) ? ms : undefined;
}

export function encodeTaskFile(task: TaskFile): string {
  const out: Record<string, unknown> = {};
  for (const key of ORDER) if (task[key] !== undefined) out[key] = task[key];
  return JSON.stringify(out, null, 2);
}

function decodeTaskFile(text: string): TaskFile | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return undefined;
  const o = v as Record<string, unknown>;
  const str = (k: string): string | undefined => (typeof o[k] === 'string' ? (o[k] as string) : undefined);
  const num = (k: string): number | undefined =>
    typeof o[k] === 'number' && Number.isSafeInteger(o[k]) ? (o[k] as number) : undefined;
  const id = str('task_id');
  const status = o.status;
  if (!isValidTaskId(id) || !isTaskStatus(status)) return undefined;
  const task: TaskFile = {
    task_id: id,
    task_description: str('task_description') ?? '',
    created_at: str('created_at') ?? isoTime(0),
    status,
    status_justification: str('status_justification') ?? '',
    from: str('from') ?? '',
    to: str('to') ?? '',
  };
  for (const k of ['accepted_at', 'staged_at', 'execute_started_at', 'completed_at'] as const) {
    const s = str(k);
    if (s !== undefined) task[k] = s;
  }
  for (const k of ['time_idle_ms', 'time_staged_ms', 'time_cpu_ms'] as const) {
    const n = num(k);
    if (n !== undefined) task[k] = n;
  }
  return task;
}

/** Reads and writes the task directories; every write is atomic (temp file, fsync, rename). */
export class TaskDirs {
  readonly root: string;
  constructor(home: string) {
    this.root = join(home, 'tasks');
  }

  dir(name: TaskCategory | 'results' | '.evidence'): string {
    return join(this.root, name);
  }

  async ensure(): Promise<void> {
    for (const d of ['received', 'submitted', 'results', '.evidence'] as const) await ensureDir(this.dir(d), 0o700);
  }

  /**
   * Removes temp files of writes a crash interrupted, in every task directory (every file here is
   * written through writeFileAtomic, so there are no other partial files). Run by the task service
   * before it loads the directories. Returns the paths removed.
   */
  async removeLeftovers(): Promise<string[]> {
    const removed: string[] = [];
    for (const d of ['received', 'submitted', 'results', '.evidence'] as const) {
      for (const name of await removeStaleTemps(this.dir(d))) removed.push(join(this.dir(d), name));
    }
    return removed;
  }

  private taskPath(category: TaskCategory, id: string): string {
    if (!isValidTaskId(id)) throw new RangeError(`invalid task id ${JSON.stringify(id)}`);
    return join(this.dir(category), `${id}.json`);
  }

  async write(category: TaskCategory, task: TaskFile): Promise<void> {
    await writeFileAtomic(this.taskPath(category, task.task_id), encodeTaskFile(task), { mode: 0o600 });
  }

  async loadAll(category: TaskCategory): Promise<TaskFile[]> {
    const names = await readdir(this.dir(category)).catch(() => [] as string[]);
    const out: TaskFile[] = [];
    for (const name of names.sort()) {
      if (!name.endsWith('.json') || !isValidTaskId(name.slice(0, -5))) continue;
      const task = decodeTaskFile(await readFile(join(this.dir(category), name), 'utf8').catch(() => ''));
      if (task !== undefined && task.task_id === name.slice(0, -5)) out.push(task);
    }
    return out;
  }

  /** `results/<id>_<name>`; the name must already have passed resultFilenameError. */
  async writeResult(id: string, name: string, data: string | Uint8Array): Promise<string> {
    if (!isValidTaskId(id) || resultFilenameError(name) !== undefined) throw new RangeError('invalid result name');
    const path = join(this.dir('results'), `${id}_${name}`);
    await writeFileAtomic(path, data, { mode: 0o600 });
    return path;
  }

  async writeEvidence(id: string, evidence: Record<string, string | number>): Promise<void> {
    if (!isValidTaskId(id)) throw new RangeError('invalid task id');
    await writeFileAtomic(join(this.dir('.evidence'), `${id}.json`), JSON.stringify(evidence), { mode: 0o600 });
  }

  async readEvidence(id: string): Promise<Record<string, unknown> | undefined> {
    if (!isValidTaskId(id)) return undefined;
    try {
      const v: unknown = JSON.parse(await readFile(join(this.dir('.evidence'), `${id}.json`), 'utf8'));
      return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
    } catch {
      return undefined;
    }
  }
}

function hasControlCharacter(name: string): boolean {
  for (let i = 0; i < name.length; i++) if (name.charCodeAt(i) < 0x20) return true;
  return false;
}
