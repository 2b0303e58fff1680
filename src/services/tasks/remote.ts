import { addrEquals, formatAddr } from '../../protocol/address.js';
import type { Addr } from '../../protocol/address.js';
import {
  encodeAck,
  encodeSubmitResponse,
  extInt,
  extString,
  type SendResults,
  type StatusUpdate,
  type SubmitRequest,
  TaskFrameType,
} from '../../protocol/tasksubmit.js';
import type { TypedFrame } from '../../protocol/typed-frame.js';
import { newTask } from './book.js';
import type { TaskCore } from './core.js';
import { MAX_TIMING_MS, receiptMessage, type ReceiptFields } from '../../protocol/task-evidence.js';
import {
  isoTime,
  MAX_DESCRIPTION_BYTES,
  MAX_JUSTIFICATION_BYTES,
  MAX_RESULT_FILE_BYTES,
  msOf,
  resultFilenameError,
  type TaskFile,
} from './files.js';
import { addrOf, fileExpiry, fileReceipt, selfAddr, signReceipt, verifyPeer } from './peer.js';

/** Frames from other nodes. `from` is the authenticated source of the stream, never a claimed field. */

const ACCEPTANCE_SLACK_MS = 2000;

export async function handleSubmit(core: TaskCore, from: Addr, msg: SubmitRequest): Promise<Uint8Array> {
  const reply = (status: number, message: string): Uint8Array => {
    if (status !== 200) core.stats.refused++;
    return encodeSubmitResponse({ taskId: msg.taskId, status, message });
  };
  if (Buffer.byteLength(msg.taskDescription) > MAX_DESCRIPTION_BYTES)
    return reply(400, `Task description longer than ${MAX_DESCRIPTION_BYTES} bytes`);
  if (core.book.received.has(msg.taskId)) return reply(400, 'Task id already used');
  if (!core.book.hasRoom()) return reply(400, 'Too many pending tasks');
  let exec: boolean;
  let mine: number;
  let theirs: number;
  try {
    const self = await core.ctx.registry.lookup(core.ctx.localAddr.node);
    const peer = await core.ctx.registry.getPoloScore(from.node);
    exec = self.task_exec === true;
    mine = typeof self.polo_score === 'number' ? self.polo_score : 0;
    theirs = typeof peer.polo_score === 'number' ? peer.polo_score : 0;
  } catch {
    return reply(400, 'Failed to verify polo score');
  }
  if (!exec) return reply(400, 'Task execution is not enabled on this node (pilotctl enable-tasks)');
  if (theirs < mine) return reply(400, `Polo score too low: submitter=${theirs}, receiver=${mine}`);
  return core.serial.run(async () => {
    if (core.book.received.has(msg.taskId)) return reply(400, 'Task id already used');
    const task = newTask({
      id: msg.taskId,
      description: msg.taskDescription,
      from: formatAddr(from),
      to: selfAddr(core.ctx),
      now: core.now(),
    });
    await core.book.save('received', task);
    core.stats.received++;
    core.emit('received', task);
    return reply(200, 'Task received with status NEW');
  });
}

/** Which status an executor may move a submitted task to, from which. */
const TRANSITIONS: Readonly<Record<string, readonly string[]>> = {
  ACCEPTED: ['NEW'],
  DECLINED: ['NEW'],
  CANCELLED: ['NEW'],
  EXECUTING: ['ACCEPTED'],
  EXPIRED: ['ACCEPTED'],
};

/** The submitted task `from` is the executor of, or the reason it is not. */
function ownTask(core: TaskCore, from: Addr, taskId: string): TaskFile | string {
  const task = core.book.submitted.get(taskId);
  if (task === undefined) return 'Unknown task';
  const to = addrOf(task.to);
  if (to === undefined || !addrEquals(to, from)) return 'Sender is not the executor of this task';
  return task;
}

export async function handleStatusUpdate(
  core: TaskCore,
  from: Addr,
  msg: StatusUpdate,
  frame: TypedFrame,
): Promise<Uint8Array> {
  const ack = (status: number, message: string): Uint8Array => {
    if (status !== 200) core.stats.refused++;
    return encodeAck({ taskId: msg.taskId, status, message });
  };
  if (Buffer.byteLength(msg.justification) > MAX_JUSTIFICATION_BYTES) return ack(400, 'Justification too long');
  let expiry: Parameters<typeof fileExpiry>[1] | undefined;
  const result = await core.serial.run(async () => {
    const task = ownTask(core, from, msg.taskId);
    if (typeof task === 'string') return ack(400, task);
    // The reference's CLI sends SUCCEEDED after the results; the results already completed the task.
    if (msg.status === 'SUCCEEDED' && task.status === 'COMPLETED') return ack(200, 'Already completed');
    const allowed = TRANSITIONS[msg.status];
    if (allowed === undefined || !allowed.includes(task.status))
      return ack(400, `Cannot change status from ${task.status} to ${msg.status}`);
    if (msg.status === 'DECLINED' && msg.justification.trim() === '')
      return ack(400, 'A declined task needs a justification');
    const now = core.now();
    const next: TaskFile = {
      ...task,
      status: msg.status as TaskFile['status'],
      status_justification: msg.justification,
    };
    if (msg.status === 'ACCEPTED') {
      next.accepted_at = isoTime(now);
      const signature = extString(frame, 'accept_signature');
      const acceptedAt = extInt(frame, 'accepted_at_ms');
      if (signature !== undefined && acceptedAt !== undefined)
        await core.book.dirs.writeEvidence(task.task_id, { accept_signature: signature, accepted_at_ms: acceptedAt });
    }
    if (msg.status === 'EXPIRED') {
      const ev = await core.book.dirs.readEvidence(task.task_id);
      if (ev !== undefined && typeof ev.accept_signature === 'string' && typeof ev.accepted_at_ms === 'number') {
        expiry = {
          taskId: task.task_id,
          submitter: core.ctx.localAddr.node,
          executor: from.node,
          acceptedAtMs: ev.accepted_at_ms,
          acceptSignature: ev.accept_signature,
        };
      }
    }
    await core.book.save('submitted', next);
    core.emit('submitted', next);
    return ack(200, `Status updated to ${msg.status}`);
  });
  if (expiry !== undefined) void fileExpiry(core.ctx, expiry);
  return result;
}

/** Timings the submitter can vouch for: they fit in the time it has itself seen pass. */
function plausible(task: TaskFile, r: ReceiptFields, now: number): boolean {
  const created = msOf(task.created_at) ?? now;
  const values = [r.timeIdleMs, r.timeStagedMs, r.timeCpuMs];
  if (values.some((v) => v < 0 || v > MAX_TIMING_MS)) return false;
  return values.reduce((a, b) => a + b, 0) <= now - created + ACCEPTANCE_SLACK_MS;
}

export async function handleResults(
  core: TaskCore,
  from: Addr,
  msg: SendResults,
  frame: TypedFrame,
): Promise<Uint8Array> {
  const ack = (status: number, message: string, receiptSignature?: string): Uint8Array => {
    if (status !== 200) core.stats.refused++;
    return encodeAck({
      taskId: msg.taskId,
      status,
      message,
      ...(receiptSignature !== undefined ? { receiptSignature } : {}),
    });
  };
  let filename: string;
  let data: string | Uint8Array;
  if (msg.resultType === 'file') {
    if (msg.filename === undefined || msg.fileData === undefined)
      return ack(400, 'A file result needs filename and file_data');
    const bad = resultFilenameError(msg.filename);
    if (bad !== undefined) return ack(400, bad);
    if (msg.fileData.length > MAX_RESULT_FILE_BYTES)
      return ack(400, `Result file larger than ${MAX_RESULT_FILE_BYTES} bytes`);
    filename = msg.filename;
    data = msg.fileData;
  } else {
    if (msg.resultText === undefined) return ack(400, 'A text result needs result_text');
    filename = 'result.txt';
    data = msg.resultText;
  }
  let receipt: { fields: ReceiptFields; executorSig: string; mine: string } | undefined;
  const result = await core.serial.run(async () => {
    const task = ownTask(core, from, msg.taskId);
    if (typeof task === 'string') return ack(400, task);
    if (task.status !== 'ACCEPTED' && task.status !== 'EXECUTING')
      return ack(400, `Cannot take results for a task in status ${task.status}`);
    await core.book.dirs.writeResult(task.task_id, filename, data);
    const now = core.now();
    const next: TaskFile = {
      ...task,
      status: 'COMPLETED',
      status_justification: 'Task completed with results',
      completed_at:
        msOf(msg.completedAt) !== undefined && msg.completedAt.length <= 64 ? msg.completedAt : isoTime(now),
    };
    if (msg.timeIdleMs !== undefined) next.time_idle_ms = msg.timeIdleMs;
    if (msg.timeStagedMs !== undefined) next.time_staged_ms = msg.timeStagedMs;
    if (msg.timeCpuMs !== undefined) next.time_cpu_ms = msg.timeCpuMs;
    await core.book.save('submitted', next);
    core.stats.completed++;
    core.emit('submitted', next);
    const executorSig = extString(frame, 'receipt_signature');
    if (executorSig === undefined) return ack(200, 'Results received');
    const fields: ReceiptFields = {
      taskId: task.task_id,
      submitter: core.ctx.localAddr.node,
      executor: from.node,
      timeIdleMs: msg.timeIdleMs ?? 0,
      timeStagedMs: msg.timeStagedMs ?? 0,
      timeCpuMs: msg.timeCpuMs ?? 0,
    };
    if (!plausible(task, fields, now)) {
      core.ctx.log.warn(
        { task_id: task.task_id },
        'task timings exceed the time elapsed here; receipt not countersigned',
      );
      return ack(200, 'Results received; timings not plausible, receipt not countersigned');
    }
    const mine = signReceipt(core.ctx, fields);
    receipt = { fields, executorSig, mine };
    return ack(200, 'Results received', mine);
  });
  if (receipt !== undefined) {
    const r = receipt;
    void verifyPeer(core.ctx, r.fields.executor, receiptMessage(r.fields), r.executorSig).then(async (valid) => {
      if (!valid)
        return core.ctx.log.warn({ task_id: r.fields.taskId }, 'executor receipt signature does not verify; not filed');
      if ((await fileReceipt(core.ctx, r.fields, r.mine, r.executorSig)) !== undefined) core.stats.receipts_filed++;
    });
  }
  return result;
}

export function isRemoteFrame(type: number): boolean {
  return type === TaskFrameType.Submit || type === TaskFrameType.StatusUpdate || type === TaskFrameType.SendResults;
}
