import type { Duplex } from 'node:stream';
import { PilotError, type PilotErrorCode } from '../errors.js';
import { formatAddr, parseAddr, type Addr } from '../protocol/address.js';
import { isJsonObject, type JsonObject, type JsonValue } from '../protocol/json.js';
import { ExtFrameType, jsonFrame, payloadObject } from '../protocol/tasksubmit.js';
import { FrameReader, writeFrame } from '../services/tasks/frame-reader.js';

/**
 * Tasks (port 1003) through the local daemon: every call opens a stream from this node to its
 * own task service, which owns `~/.pilot/tasks/` and talks to the peers.
 *
 *   const tasks = new Tasks(await Driver.connect());
 *   for await (const task of tasks.incoming()) {
 *     await tasks.acceptTask(task.task_id);
 *     await tasks.executeNext();
 *     await tasks.sendResults(task.task_id, { text: await work(task.description) });
 *   }
 */

export const TASK_PORT = 1003;
const ANSWER_TIMEOUT_MS = 60_000;

/** What the task client needs from a driver (the SDK `Driver` fits; so does the CLI's client). */
export interface TaskTransport {
  readonly localAddr?: Addr;
  dial(addr: Addr, port: number, options?: { timeoutMs?: number; signal?: AbortSignal }): Promise<Duplex>;
}

export interface TaskSummary {
  readonly category: 'received' | 'submitted';
  readonly created_at: string;
  readonly description: string;
  readonly from: string;
  readonly status: string;
  readonly task_id: string;
  readonly to: string;
}

export interface SubmitResult {
  readonly accepted: boolean;
  readonly message: string;
  readonly status: number;
  readonly target: string;
  readonly task: string;
  readonly task_id: string;
}

export type TaskResult = { readonly text: string } | { readonly filename: string; readonly data: Uint8Array };

const KNOWN_CODES: ReadonlySet<string> = new Set<PilotErrorCode>([
  'invalid_argument',
  'not_running',
  'already_exists',
  'connection_failed',
  'not_found',
  'timeout',
  'untrusted',
  'refused',
  'unavailable',
  'rate_limited',
  'too_large',
  'protocol',
  'internal',
]);

function toError(reply: JsonObject): PilotError {
  const code =
    typeof reply.code === 'string' && KNOWN_CODES.has(reply.code) ? (reply.code as PilotErrorCode) : 'internal';
  return new PilotError(
    code,
    typeof reply.message === 'string' ? reply.message : 'task request failed',
    typeof reply.hint === 'string' ? reply.hint : undefined,
  );
}

function summary(v: JsonValue | undefined): TaskSummary | undefined {
  if (!isJsonObject(v) || typeof v.task_id !== 'string') return undefined;
  const s = (k: string): string => (typeof v[k] === 'string' ? (v[k] as string) : '');
  return {
    category: s('category') === 'submitted' ? 'submitted' : 'received',
    created_at: s('created_at'),
    description: s('description'),
    from: s('from'),
    status: s('status'),
    task_id: s('task_id'),
    to: s('to'),
  };
}

export class Tasks {
  constructor(
    private readonly driver: TaskTransport,
    /** This node's address; taken from the driver when it has one. */
    private readonly self: Addr | undefined = driver.localAddr,
  ) {}

  private addr(): Addr {
    if (this.self === undefined)
      throw new PilotError('invalid_argument', 'the task client needs the local node address');
    return this.self;
  }

  private async open(op: JsonObject): Promise<{ conn: Duplex; reader: FrameReader; data: JsonValue }> {
    let conn: Duplex;
    try {
      conn = await this.driver.dial(this.addr(), TASK_PORT, { timeoutMs: 10_000 });
    } catch (err) {
      throw new PilotError(
        'unavailable',
        `the daemon's task service is not running: ${(err as Error).message}`,
        'it is off when the daemon runs with -no-tasksubmit',
        { cause: err },
      );
    }
    const reader = new FrameReader(conn);
    try {
      await writeFrame(conn, jsonFrame(ExtFrameType.Local, op));
      const frame = await reader.next(ANSWER_TIMEOUT_MS);
      const reply = frame === null ? undefined : payloadObject(frame);
      if (reply === undefined) throw new PilotError('protocol', 'the task service closed without an answer');
      if (reply.ok !== true) throw toError(reply);
      return { conn, reader, data: reply.data ?? null };
    } catch (err) {
      conn.destroy();
      throw err;
    }
  }

  /** One request, its `data`. */
  async request(op: JsonObject): Promise<JsonValue> {
    const { conn, data } = await this.open(op);
    conn.end();
    return data;
  }

  private async object(op: JsonObject): Promise<JsonObject> {
    const data = await this.request(op);
    if (!isJsonObject(data)) throw new PilotError('protocol', `unexpected answer to ${String(op.op)}`);
    return data;
  }

  async submitTask(target: Addr | string, description: string): Promise<SubmitResult> {
    const addr = typeof target === 'string' ? parseAddr(target) : { ok: true as const, value: target };
    if (!addr.ok) throw new PilotError('invalid_argument', `invalid target address ${JSON.stringify(target)}`);
    return (await this.object({
      op: 'submit',
      target: formatAddr(addr.value),
      description,
    })) as unknown as SubmitResult;
  }

  async tasks(type?: 'received' | 'submitted'): Promise<TaskSummary[]> {
    const data = await this.object(type === undefined ? { op: 'list' } : { op: 'list', type });
    const list = Array.isArray(data.tasks) ? data.tasks : [];
    return list.map(summary).filter((t): t is TaskSummary => t !== undefined);
  }

  /** The full task file (plus `category`). */
  task(taskId: string): Promise<JsonObject> {
    return this.object({ op: 'get', task_id: taskId });
  }

  acceptTask(taskId: string): Promise<JsonObject> {
    return this.object({ op: 'accept', task_id: taskId });
  }

  declineTask(taskId: string, justification: string): Promise<JsonObject> {
    return this.object({ op: 'decline', task_id: taskId, justification });
  }

  /** Starts the head of the queue (the oldest accepted task). */
  executeNext(): Promise<JsonObject> {
    return this.object({ op: 'execute' });
  }

  sendResults(taskId: string, result: TaskResult): Promise<JsonObject> {
    if ('text' in result) return this.object({ op: 'send_results', task_id: taskId, text: result.text });
    return this.object({
      op: 'send_results',
      task_id: taskId,
      filename: result.filename,
      file_data: Buffer.from(result.data).toString('base64'),
    });
  }

  /** `{address, node_id, polo_score, task_exec}` of this node, or of `nodeId`. */
  score(nodeId?: number): Promise<JsonObject> {
    return this.object(nodeId === undefined ? { op: 'score' } : { op: 'score', node_id: nodeId });
  }

  queue(): Promise<JsonObject> {
    return this.object({ op: 'queue' });
  }

  /**
   * New tasks as they arrive (status NEW, received), until `signal` aborts or the daemon stops.
   * Tasks that were already waiting when the iteration starts come first.
   */
  async *incoming(options: { signal?: AbortSignal } = {}): AsyncGenerator<TaskSummary> {
    const { conn, reader } = await this.open({ op: 'watch' });
    const onAbort = (): void => {
      conn.destroy();
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const seen = new Set<string>();
    try {
      for (const t of await this.tasks('received')) {
        if (t.status !== 'NEW') continue;
        seen.add(t.task_id);
        yield t;
      }
      for (;;) {
        const frame = await reader.next(2 ** 31 - 1).catch(() => null);
        if (frame === null || options.signal?.aborted === true) return;
        const event = payloadObject(frame);
        const t = summary(event?.task);
        if (t === undefined || t.category !== 'received' || t.status !== 'NEW' || seen.has(t.task_id)) continue;
        seen.add(t.task_id);
        if (seen.size > 100_000) seen.clear();
        yield t;
      }
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
      conn.destroy();
    }
  }
}
