import { readFile, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { PilotError } from '../../errors.js';
import { formatAddr, parseAddr } from '../../protocol/address.js';
import { isJsonObject, type JsonObject } from '../../protocol/json.js';
import { MAX_RESULT_FILE_BYTES, resultFilenameError } from '../../services/tasks/files.js';
import { Tasks } from '../../sdk/tasks.js';
import { invalid, maxPositionals, positional, requireFlag, stringFlag } from '../args.js';
import { withDriver, type CommandSpec } from '../command.js';
import type { CliContext, DaemonClient } from '../context.js';
import { resolveTarget } from '../target.js';
import { named } from '../names.js';

/**
 * `pilotctl task …` and `pilotctl polo`. Unlike the reference CLI, which edits the task files
 * itself, every command is a request to the daemon's task service (a LOCAL frame on a stream the
 * daemon opens to its own port 1003): the service owns `~/.pilot/tasks/` and talks to the peers.
 */

async function withTasks<T>(ctx: CliContext, fn: (tasks: Tasks, d: DaemonClient) => Promise<T>): Promise<T> {
  return withDriver(ctx, async (d) => {
    const info = await d.info();
    const address = isJsonObject(info) && typeof info.address === 'string' ? parseAddr(info.address) : undefined;
    if (address === undefined || !address.ok) throw new PilotError('internal', 'the daemon did not report its address');
    return fn(new Tasks(d, address.value), d);
  });
}

function idFlag(args: Parameters<CommandSpec['run']>[1], usage: string): string {
  return requireFlag(args, 'id', usage);
}

const str = (o: JsonObject, k: string): string => (typeof o[k] === 'string' ? (o[k] as string) : '');

/**
 * Why a receiver refused a task, as a hint. The receiver compares polo scores (the reference's
 * gate): the submitter's must be at least the receiver's.
 */
export function refusalHint(message: string): string {
  const polo = /submitter=(-?\d+), receiver=(-?\d+)/.exec(message);
  const gate =
    "a submitter's polo score must be at least the receiver's; running tasks for others (task accept, execute, send-results) raises yours";
  if (polo !== undefined && polo !== null) {
    return `your polo score is ${polo[1]}, the receiver's is ${polo[2]}: ${gate}; see scores with: pilotctl polo [node]`;
  }
  if (/polo score/i.test(message))
    return `the receiver could not compare polo scores (its registry did not answer); ${gate}`;
  if (/not enabled/i.test(message)) return 'the receiving node has to run: pilotctl enable-tasks';
  return `${gate}; see scores with: pilotctl polo [node]`;
}

export const taskSubmit: CommandSpec = {
  name: 'task submit',
  args: ['<node_id|address|hostname>', '--task <description>'],
  description:
    "Submits a task to a node that accepts tasks (enable-tasks). The receiver refuses it unless this node's polo score is at least the receiver's; a refusal is an error (code refused) whose hint gives both scores.",
  returns: '{accepted: true, message, status: 200, target, task, task_id}; a refusal is the error "refused"',
  flags: { task: 'string' },
  async run(ctx, args, usage) {
    maxPositionals(args, 1, usage);
    const text = positional(args, 0, 'target', usage);
    const description = requireFlag(args, 'task', usage);
    const data = await withTasks(ctx, async (tasks, d) => {
      const target = await resolveTarget(d, text);
      return { ...(await tasks.submitTask(target.addr, description)), target: formatAddr(target.addr) };
    });
    if (!data.accepted)
      throw new PilotError('refused', `task refused by ${text}: ${data.message}`, refusalHint(data.message));
    return { data: { ...data }, text: `task ${data.task_id} submitted to ${text}: ${data.message}` };
  },
};

/**
 * Status names as the reference documents them (NEW, ACCEPTED, DECLINED, EXECUTING, SUCCEEDED,
 * CANCELLED, EXPIRED). The reference's daemon marks a submitted task COMPLETED when its results
 * arrive while the executor's copy says SUCCEEDED; both sides are shown as SUCCEEDED.
 */
export function displayStatus(status: string): string {
  return status === 'COMPLETED' ? 'SUCCEEDED' : status;
}

export const taskList: CommandSpec = {
  name: 'task list',
  args: ['[--type received|submitted]'],
  description:
    "Lists received and submitted tasks with their status: NEW, ACCEPTED, DECLINED, EXECUTING, SUCCEEDED (results sent, and on the submitter's side received), CANCELLED (not answered within 1 minute), EXPIRED (queued over 1 hour).",
  returns: '{tasks: [{category, created_at, description, from, from_hostname?, status, task_id, to, to_hostname?}]}',
  flags: { type: 'string' },
  async run(ctx, args, usage) {
    maxPositionals(args, 0, usage);
    const type = stringFlag(args, 'type');
    if (type !== undefined && type !== 'received' && type !== 'submitted')
      throw invalid('--type must be received or submitted');
    const plain = (await withTasks(ctx, (t) => t.tasks(type))).map(
      (t): JsonObject => ({ ...t, status: displayStatus(t.status) }),
    );
    const list = await named(ctx, await named(ctx, plain, 'from'), 'to');
    const who = (t: JsonObject, field: 'from' | 'to'): string => {
      const name = t[`${field}_hostname`];
      return typeof name === 'string' ? `${String(t[field])} (${name})` : String(t[field]);
    };
    const text =
      list.length === 0
        ? 'no tasks'
        : list
            .map(
              (t) =>
                `${String(t.task_id)}  ${String(t.category).padEnd(9)}  ${String(t.status).padEnd(9)}  ${t.category === 'received' ? `from ${who(t, 'from')}` : `to ${who(t, 'to')}`}  ${String(t.description)}`,
            )
            .join('\n');
    return { data: { tasks: list }, text };
  },
};

export const taskAccept: CommandSpec = {
  name: 'task accept',
  args: ['--id <task_id>'],
  description: 'Accepts a NEW task (within 1 minute of its arrival) and queues it for execution.',
  returns: '{message, status: "ACCEPTED", task_id}',
  flags: { id: 'string' },
  async run(ctx, args, usage) {
    maxPositionals(args, 0, usage);
    const id = idFlag(args, usage);
    const data = await withTasks(ctx, (t) => t.acceptTask(id));
    return { data, text: `task ${id} accepted` };
  },
};

export const taskDecline: CommandSpec = {
  name: 'task decline',
  args: ['--id <task_id>', '--justification <text>'],
  description: 'Declines a NEW task; the justification is sent to the submitter.',
  returns: '{justification, message, status: "DECLINED", task_id}',
  flags: { id: 'string', justification: 'string' },
  async run(ctx, args, usage) {
    maxPositionals(args, 0, usage);
    const id = idFlag(args, usage);
    const justification = requireFlag(args, 'justification', usage);
    const data = await withTasks(ctx, (t) => t.declineTask(id, justification));
    return { data, text: `task ${id} declined` };
  },
};

export const taskExecute: CommandSpec = {
  name: 'task execute',
  args: [],
  description: 'Starts the task at the head of the queue (the oldest accepted one) and prints it.',
  returns: '{from, status: "EXECUTING", task_description, task_id}',
  flags: {},
  async run(ctx, args, usage) {
    maxPositionals(args, 0, usage);
    const data = await withTasks(ctx, (t) => t.executeNext());
    return {
      data,
      text: `executing ${str(data, 'task_id')} from ${str(data, 'from')}:\n${str(data, 'task_description')}`,
    };
  },
};

async function readResultFile(path: string): Promise<{ filename: string; data: Buffer }> {
  const filename = basename(path);
  const bad = resultFilenameError(filename);
  if (bad !== undefined) throw invalid(bad);
  const info = await stat(path).catch((err: Error) => {
    throw new PilotError('not_found', `cannot read ${path}: ${err.message}`);
  });
  if (!info.isFile()) throw invalid(`${path} is not a file`);
  if (info.size > MAX_RESULT_FILE_BYTES)
    throw new PilotError('too_large', `${path} is larger than ${MAX_RESULT_FILE_BYTES} bytes`);
  return { filename, data: await readFile(path) };
}

export const taskSendResults: CommandSpec = {
  name: 'task send-results',
  args: ['--id <task_id>', '--results <text> | --file <path>'],
  description: 'Sends the results of an executing task to its submitter and marks it SUCCEEDED.',
  returns: '{sent_to, sent_type, status: "SUCCEEDED", task_id, filename?, file_size?}',
  flags: { id: 'string', results: 'string', file: 'string' },
  async run(ctx, args, usage) {
    maxPositionals(args, 0, usage);
    const id = idFlag(args, usage);
    const text = stringFlag(args, 'results');
    const path = stringFlag(args, 'file');
    if ((text === undefined) === (path === undefined))
      throw invalid('give exactly one of --results or --file', `usage: ${usage}`);
    const file = path === undefined ? undefined : await readResultFile(path);
    const data = await withTasks(ctx, (t) => t.sendResults(id, file === undefined ? { text: text ?? '' } : file));
    return { data, text: `results of ${id} sent to ${str(data, 'sent_to')}` };
  },
};

export const taskQueue: CommandSpec = {
  name: 'task queue',
  args: [],
  description: 'Shows the accepted tasks waiting for execution, oldest first.',
  returns: '{count, queue: [{created_at, description, from, task_id}]} or {queue: []}',
  flags: {},
  async run(ctx, args, usage) {
    maxPositionals(args, 0, usage);
    const data = await withTasks(ctx, (t) => t.queue());
    const q = Array.isArray(data.queue) ? data.queue : [];
    const text =
      q.length === 0
        ? 'queue is empty'
        : q
            .map((e) =>
              isJsonObject(e) ? `${str(e, 'task_id')}  from ${str(e, 'from')}  ${str(e, 'description')}` : '',
            )
            .join('\n');
    return { data, text };
  },
};

export const polo: CommandSpec = {
  name: 'polo',
  args: ['[node_id|address|hostname]'],
  description:
    "Shows this node's polo score, or another node's (by id, address or hostname), as the daemon's registry has it.",
  returns: '{address, node_id, polo_score, task_exec}',
  flags: {},
  async run(ctx, args, usage) {
    maxPositionals(args, 1, usage);
    const raw = args.positionals[0];
    const data = await withTasks(ctx, async (t, d) =>
      t.score(raw === undefined ? undefined : (await resolveTarget(d, raw)).addr.node),
    );
    return { data, text: `node ${String(data.node_id)} polo score ${String(data.polo_score)}` };
  },
};

export const TASK_COMMANDS: readonly CommandSpec[] = [
  taskSubmit,
  taskList,
  taskAccept,
  taskDecline,
  taskExecute,
  taskSendResults,
  taskQueue,
  polo,
];
