import type { TaskStatus } from '../../protocol/tasksubmit.js';
import { isoTime, msOf, type TaskDirs, type TaskCategory, type TaskFile } from './files.js';
import { QUEUE_HEAD_TIMEOUT_MS } from '../../protocol/task-evidence.js';

/** A NEW task must be accepted or declined within this long, else it is CANCELLED. */
export const ANSWER_TIMEOUT_MS = 60_000;
/** An ACCEPTED task at the head of the queue for longer than this is EXPIRED (receiver −1). */
/** Most tasks kept in memory per category; older finished ones are only on disk beyond it. */
const MAX_TASKS = 10_000;

const FINISHED: ReadonlySet<TaskStatus> = new Set(['DECLINED', 'COMPLETED', 'SUCCEEDED', 'CANCELLED', 'EXPIRED']);

/**
 * The task service's view of `tasks/received` and `tasks/submitted`: an in-memory copy of every
 * file, changed only through `save` (which writes the file first), and the worker's FIFO queue of
 * ACCEPTED tasks. The queue head's waiting time is measured from when it became head.
 */
export class TaskBook {
  readonly received = new Map<string, TaskFile>();
  readonly submitted = new Map<string, TaskFile>();
  /** Ids of ACCEPTED received tasks in acceptance order. */
  readonly queue: string[] = [];
  #headId: string | undefined;
  #headSince = 0;

  constructor(
    readonly dirs: TaskDirs,
    private readonly now: () => number,
  ) {}

  async load(): Promise<void> {
    await this.dirs.ensure();
    for (const t of await this.dirs.loadAll('received')) this.received.set(t.task_id, t);
    for (const t of await this.dirs.loadAll('submitted')) this.submitted.set(t.task_id, t);
    const accepted = [...this.received.values()].filter((t) => t.status === 'ACCEPTED');
    accepted.sort((a, b) => (msOf(a.accepted_at) ?? 0) - (msOf(b.accepted_at) ?? 0));
    this.queue.push(...accepted.map((t) => t.task_id));
    this.#touchHead();
  }

  map(category: TaskCategory): Map<string, TaskFile> {
    return category === 'received' ? this.received : this.submitted;
  }

  pendingCount(): number {
    let n = 0;
    for (const t of this.received.values()) if (!FINISHED.has(t.status)) n++;
    return n;
  }

  hasRoom(): boolean {
    return this.pendingCount() < MAX_TASKS;
  }

  async save(category: TaskCategory, task: TaskFile): Promise<void> {
    await this.dirs.write(category, task);
    const map = this.map(category);
    map.set(task.task_id, task);
    if (map.size > MAX_TASKS) {
      for (const [id, t] of map) {
        if (map.size <= MAX_TASKS) break;
        if (FINISHED.has(t.status)) map.delete(id);
      }
    }
  }

  enqueue(id: string): void {
    this.queue.push(id);
    this.#touchHead();
  }

  dequeue(id: string): void {
    const i = this.queue.indexOf(id);
    if (i >= 0) this.queue.splice(i, 1);
    this.#touchHead();
  }

  /** The head of the queue if it has waited there longer than the queue-head timeout. */
  expiredHead(): TaskFile | undefined {
    this.#touchHead();
    const id = this.#headId;
    if (id === undefined || this.now() - this.#headSince <= QUEUE_HEAD_TIMEOUT_MS) return undefined;
    return this.received.get(id);
  }

  /** NEW received tasks nobody answered in time. */
  unanswered(): TaskFile[] {
    const now = this.now();
    return [...this.received.values()].filter(
      (t) => t.status === 'NEW' && now - (msOf(t.created_at) ?? now) > ANSWER_TIMEOUT_MS,
    );
  }

  #touchHead(): void {
    const head = this.queue[0];
    if (head !== this.#headId) {
      // Every enqueue/dequeue passes here, so "now" is when this task became head.
      this.#headId = head;
      this.#headSince = this.now();
    }
  }
}

export function newTask(p: { id: string; description: string; from: string; to: string; now: number }): TaskFile {
  return {
    task_id: p.id,
    task_description: p.description,
    created_at: isoTime(p.now),
    status: 'NEW',
    status_justification: 'A new task was created',
    from: p.from,
    to: p.to,
  };
}

export function listEntry(
  category: TaskCategory,
  t: TaskFile,
): {
  category: string;
  created_at: string;
  description: string;
  from: string;
  status: string;
  task_id: string;
  to: string;
} {
  return {
    category,
    created_at: t.created_at,
    description: t.task_description,
    from: t.from,
    status: t.status,
    task_id: t.task_id,
    to: t.to,
  };
}
