import type { ServiceContext } from '../types.js';
import type { TaskBook } from './book.js';
import type { TaskCategory, TaskFile } from './files.js';

export interface TaskStats {
  submitted: number;
  received: number;
  refused: number;
  completed: number;
  cancelled: number;
  expired: number;
  receipts_filed: number;
}

/** What the remote and local request handlers share. */
export interface TaskCore {
  readonly ctx: ServiceContext;
  readonly book: TaskBook;
  readonly stats: TaskStats;
  readonly serial: SerialQueue;
  now(): number;
  /** Tells local watchers (SDK `incoming()`) about a task change. */
  emit(category: TaskCategory, task: TaskFile): void;
}

/** Runs changes to the task files one at a time, so read-modify-write never interleaves. */
export class SerialQueue {
  #tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.#tail.then(fn, fn);
    this.#tail = next.catch(() => undefined);
    return next;
  }
}
