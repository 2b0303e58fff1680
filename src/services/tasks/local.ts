import { randomBytes } from 'node:crypto';
import { PilotError } from '../../errors.js';
import { formatAddr } from '../../protocol/address.js';
import { isJsonObject, type JsonObject, type JsonValue } from '../../protocol/json.js';
import {
  decodeSubmitResponse,
  encodeSubmitRequest,
  formatTaskId,
  isValidTaskId,
  jsonFrame,
  TaskFrameType,
} from '../../protocol/tasksubmit.js';
import { ANSWER_TIMEOUT_MS, listEntry, newTask } from './book.js';
import type { TaskCore } from './core.js';
import {
  isoTime,
  MAX_DESCRIPTION_BYTES,
  MAX_JUSTIFICATION_BYTES,
  MAX_RESULT_FILE_BYTES,
  msOf,
  resultFilenameError,
  type TaskCategory,
  type TaskFile,
} from './files.js';
import {
  addrOf,
  fileReceipt,
  notifyPeer,
  reportAcceptance,
  selfAddr,
  sendToPeer,
  signAcceptance,
  signReceipt,
  TASK_PORT,
} from './peer.js';
import { FrameReader, writeFrame } from './frame-reader.js';

/** Requests of the local CLI / SDK (frame LOCAL, see wire.ts). Each returns the `data` of §11.2. */

const SUBMIT_TIMEOUT_MS = 30_000;

function str(req: JsonObject, key: string): string | undefined {
  const v = req[key];
  return typeof v === 'string' ? v : undefined;
}

function taskIdOf(req: JsonObject): string {
  const id = str(req, 'task_id');
  if (!isValidTaskId(id))
    throw new PilotError(
      'invalid_argument',
      `invalid task id ${JSON.stringify(id ?? '')}`,
      'task ids look like 0a1b2c3d-0000-1111-2222-333344445555 (see: pilotctl task list)',
    );
  return id;
}

function received(core: TaskCore, id: string): TaskFile {
  const t = core.book.received.get(id);
  if (t === undefined) throw new PilotError('not_found', `task ${id} not found among received tasks`);
  return t;
}

function statusFrame(taskId: string, status: string, justification: string, ext: JsonObject = {}): Uint8Array {
  return jsonFrame(TaskFrameType.StatusUpdate, { task_id: taskId, status, justification, ...ext });
}

async function submit(core: TaskCore, req: JsonObject): Promise<JsonValue> {
  const target = addrOf(str(req, 'target') ?? '');
  const description = str(req, 'description') ?? '';
  if (target === undefined) throw new PilotError('invalid_argument', 'submit needs a target address');
  if (description.trim() === '') throw new PilotError('invalid_argument', 'the task description is empty');
  if (Buffer.byteLength(description) > MAX_DESCRIPTION_BYTES)
    throw new PilotError('invalid_argument', `task description longer than ${MAX_DESCRIPTION_BYTES} bytes`);
  const taskId = formatTaskId(randomBytes(16));
  const to = formatAddr(target);
  const created = core.now();
  const conn = await core.ctx.net.dial(target, TASK_PORT, { timeoutMs: SUBMIT_TIMEOUT_MS });
  let status: number;
  let message: string;
  try {
    const reader = new FrameReader(conn);
    await writeFrame(
      conn,
      encodeSubmitRequest({ taskId, taskDescription: description, fromAddr: selfAddr(core.ctx), toAddr: to }),
    );
    const frame = await reader.next(SUBMIT_TIMEOUT_MS);
    const reply =
      frame === null || frame.type !== TaskFrameType.Submit ? undefined : decodeSubmitResponse(frame.payload);
    if (reply === undefined || !reply.ok)
      throw new PilotError('protocol', `${to} gave no valid answer to the task submission`);
    status = reply.value.status;
    message = reply.value.message;
  } finally {
    conn.end();
    setTimeout(() => conn.destroy(), 5000).unref();
  }
  const accepted = status === 200;
  if (accepted) {
    await core.serial.run(async () => {
      const task = newTask({ id: taskId, description, from: selfAddr(core.ctx), to, now: created });
      await core.book.save('submitted', task);
      core.stats.submitted++;
    });
  }
  return { accepted, message, status, target: to, task: description, task_id: taskId };
}

function list(core: TaskCore, req: JsonObject): JsonValue {
  const type = str(req, 'type');
  if (type !== undefined && type !== 'received' && type !== 'submitted')
    throw new PilotError('invalid_argument', '--type must be received or submitted');
  const cats: TaskCategory[] = type === undefined ? ['received', 'submitted'] : [type];
  const tasks: JsonObject[] = [];
  for (const c of cats) for (const t of core.book.map(c).values()) tasks.push(listEntry(c, t));
  tasks.sort((a, b) => String(a.created_at).localeCompare(String(b.created_at)));
  return { tasks };
}

async function accept(core: TaskCore, req: JsonObject): Promise<JsonValue> {
  const id = taskIdOf(req);
  return core.serial.run(async () => {
    const t = received(core, id);
    if (t.status !== 'NEW')
      throw new PilotError('refused', `task ${id} is ${t.status}, only a NEW task can be accepted`);
    const now = core.now();
    const created = msOf(t.created_at) ?? now;
    if (now - created > ANSWER_TIMEOUT_MS) {
      await cancel(core, t);
      throw new PilotError('timeout', `task ${id} was not answered within 1 minute and is cancelled`);
    }
    const next: TaskFile = {
      ...t,
      status: 'ACCEPTED',
      status_justification: 'Task accepted',
      accepted_at: isoTime(now),
      staged_at: isoTime(now),
      time_idle_ms: now - created,
    };
    await core.book.save('received', next);
    core.book.enqueue(id);
    const submitter = addrOf(t.from)?.node ?? 0;
    const signature = signAcceptance(core.ctx, id, submitter, core.ctx.localAddr.node, now);
    reportAcceptance(core.ctx, {
      taskId: id,
      submitter,
      executor: core.ctx.localAddr.node,
      acceptedAtMs: now,
      acceptSignature: signature,
    });
    notifyPeer(
      core.ctx,
      t.from,
      statusFrame(id, 'ACCEPTED', 'Task accepted', { accept_signature: signature, accepted_at_ms: now }),
      'ACCEPTED',
    );
    core.emit('received', next);
    return { message: 'Task accepted and queued', status: 'ACCEPTED', task_id: id };
  });
}

export async function cancel(core: TaskCore, t: TaskFile): Promise<void> {
  const why = 'Task cancelled: no response within 1 minute';
  const next: TaskFile = { ...t, status: 'CANCELLED', status_justification: why };
  await core.book.save('received', next);
  core.stats.cancelled++;
  notifyPeer(core.ctx, t.from, statusFrame(t.task_id, 'CANCELLED', why), 'CANCELLED');
  core.emit('received', next);
}

async function decline(core: TaskCore, req: JsonObject): Promise<JsonValue> {
  const id = taskIdOf(req);
  const justification = (str(req, 'justification') ?? '').trim();
  if (justification === '')
    throw new PilotError(
      'invalid_argument',
      'declining needs a justification',
      'usage: pilotctl task decline --id <id> --justification <text>',
    );
  if (Buffer.byteLength(justification) > MAX_JUSTIFICATION_BYTES)
    throw new PilotError('invalid_argument', 'justification too long');
  return core.serial.run(async () => {
    const t = received(core, id);
    if (t.status !== 'NEW')
      throw new PilotError('refused', `task ${id} is ${t.status}, only a NEW task can be declined`);
    const now = core.now();
    const next: TaskFile = {
      ...t,
      status: 'DECLINED',
      status_justification: justification,
      accepted_at: isoTime(now),
      time_idle_ms: now - (msOf(t.created_at) ?? now),
    };
    await core.book.save('received', next);
    notifyPeer(core.ctx, t.from, statusFrame(id, 'DECLINED', justification), 'DECLINED');
    core.emit('received', next);
    return { justification, message: 'Task declined', status: 'DECLINED', task_id: id };
  });
}

async function execute(core: TaskCore): Promise<JsonValue> {
  return core.serial.run(async () => {
    const id = core.book.queue[0];
    const t = id === undefined ? undefined : core.book.received.get(id);
    if (id === undefined || t === undefined)
      throw new PilotError(
        'not_found',
        'no accepted task is waiting in the queue',
        'accept one first: pilotctl task accept --id <id>',
      );
    const now = core.now();
    const staged = msOf(t.staged_at) ?? msOf(t.accepted_at) ?? now;
    const next: TaskFile = {
      ...t,
      status: 'EXECUTING',
      status_justification: 'Task execution started',
      execute_started_at: isoTime(now),
      time_staged_ms: Math.max(0, now - staged),
    };
    await core.book.save('received', next);
    core.book.dequeue(id);
    notifyPeer(core.ctx, t.from, statusFrame(id, 'EXECUTING', 'Task execution started'), 'EXECUTING');
    core.emit('received', next);
    return { from: t.from, status: 'EXECUTING', task_description: t.task_description, task_id: id };
  });
}

const inFlight = new WeakMap<TaskCore, Set<string>>();

async function sendResults(core: TaskCore, req: JsonObject): Promise<JsonValue> {
  const id = taskIdOf(req);
  const text = str(req, 'text');
  const filename = str(req, 'filename');
  const fileData = str(req, 'file_data');
  const isFile = filename !== undefined;
  if (isFile === (text !== undefined))
    throw new PilotError('invalid_argument', 'give exactly one of --results <text> or --file <path>');
  const data = isFile ? Buffer.from(fileData ?? '', 'base64') : undefined;
  if (isFile) {
    const bad = resultFilenameError(filename);
    if (bad !== undefined) throw new PilotError('invalid_argument', bad);
    if ((data?.length ?? 0) > MAX_RESULT_FILE_BYTES)
      throw new PilotError('too_large', `result file larger than ${MAX_RESULT_FILE_BYTES} bytes`);
  }
  const busy = inFlight.get(core) ?? new Set<string>();
  inFlight.set(core, busy);
  if (busy.has(id)) throw new PilotError('refused', `results for task ${id} are already being sent`);
  const t = received(core, id);
  if (t.status !== 'EXECUTING' && t.status !== 'ACCEPTED')
    throw new PilotError('refused', `task ${id} is ${t.status}: results can be sent for EXECUTING or ACCEPTED tasks`);
  busy.add(id);
  try {
    const now = core.now();
    const started = msOf(t.execute_started_at) ?? now;
    const timings = { idle: t.time_idle_ms ?? 0, staged: t.time_staged_ms ?? 0, cpu: Math.max(0, now - started) };
    const submitter = addrOf(t.from)?.node ?? 0;
    const fields = {
      taskId: id,
      submitter,
      executor: core.ctx.localAddr.node,
      timeIdleMs: timings.idle,
      timeStagedMs: timings.staged,
      timeCpuMs: timings.cpu,
    };
    const mine = signReceipt(core.ctx, fields);
    const json: JsonObject = { task_id: id, result_type: isFile ? 'file' : 'text' };
    if (text !== undefined) json.result_text = text;
    if (isFile) {
      json.filename = filename;
      json.file_data = (data ?? Buffer.alloc(0)).toString('base64');
    }
    json.completed_at = isoTime(now);
    json.time_idle_ms = timings.idle;
    json.time_staged_ms = timings.staged;
    json.time_cpu_ms = timings.cpu;
    json.receipt_signature = mine;
    const to = addrOf(t.from);
    if (to === undefined) throw new PilotError('internal', `task ${id} has no valid submitter address`);
    const ack = await sendToPeer(core.ctx, to, jsonFrame(TaskFrameType.SendResults, json));
    if (ack !== undefined && ack.status !== 200)
      throw new PilotError('refused', `${t.from} refused the results: ${ack.message}`);
    await core.serial.run(async () => {
      const cur = core.book.received.get(id) ?? t;
      const next: TaskFile = {
        ...cur,
        status: 'SUCCEEDED',
        status_justification: 'Results sent successfully',
        execute_started_at: cur.execute_started_at ?? isoTime(started),
        completed_at: isoTime(now),
        time_cpu_ms: timings.cpu,
      };
      await core.book.save('received', next);
      core.book.dequeue(id);
      core.emit('received', next);
    });
    if (ack?.receiptSignature !== undefined) void fileReceipt(core.ctx, fields, ack.receiptSignature, mine);
    const out: JsonObject = { sent_to: t.from, sent_type: isFile ? 'file' : 'text', status: 'SUCCEEDED', task_id: id };
    if (isFile) {
      out.filename = filename;
      out.file_size = data?.length ?? 0;
    }
    return out;
  } finally {
    busy.delete(id);
  }
}

function queue(core: TaskCore): JsonValue {
  const entries: JsonObject[] = [];
  for (const id of core.book.queue) {
    const t = core.book.received.get(id);
    if (t !== undefined)
      entries.push({ created_at: t.created_at, description: t.task_description, from: t.from, task_id: id });
  }
  return entries.length === 0 ? { queue: [] } : { count: entries.length, queue: entries };
}

function get(core: TaskCore, req: JsonObject): JsonValue {
  const id = taskIdOf(req);
  const t = core.book.received.get(id) ?? core.book.submitted.get(id);
  if (t === undefined) throw new PilotError('not_found', `task ${id} not found`);
  return { ...t, category: core.book.received.has(id) ? 'received' : 'submitted' };
}

/** A node's polo score as the daemon's registry has it (this node when `node_id` is absent). */
async function score(core: TaskCore, req: JsonObject): Promise<JsonValue> {
  const raw = req.node_id;
  const node = raw === undefined ? core.ctx.localAddr.node : raw;
  if (typeof node !== 'number' || !Number.isSafeInteger(node) || node <= 0 || node > 0xffffffff)
    throw new PilotError('invalid_argument', 'node_id must be a node id');
  const reply = await core.ctx.registry.lookup(node);
  return {
    address: reply.address ?? null,
    node_id: node,
    polo_score: typeof reply.polo_score === 'number' ? reply.polo_score : 0,
    task_exec: reply.task_exec === true,
  };
}

/** Runs one local request; `watch` is handled by the service (it keeps the stream open). */
export async function handleLocal(core: TaskCore, req: unknown): Promise<JsonValue> {
  if (!isJsonObject(req)) throw new PilotError('invalid_argument', 'local task request must be a JSON object');
  switch (req.op) {
    case 'submit':
      return submit(core, req);
    case 'list':
      return list(core, req);
    case 'accept':
      return accept(core, req);
    case 'decline':
      return decline(core, req);
    case 'execute':
      return execute(core);
    case 'send_results':
      return sendResults(core, req);
    case 'queue':
      return queue(core);
    case 'get':
      return get(core, req);
    case 'score':
      return score(core, req);
    default:
      throw new PilotError('invalid_argument', `unknown task operation ${JSON.stringify(req.op ?? null)}`);
  }
}
