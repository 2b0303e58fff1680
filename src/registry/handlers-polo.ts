import { verifyChallenge } from '../crypto/registry-signing.js';
import { isValidTaskId } from '../protocol/tasksubmit.js';
import {
  acceptMessage,
  expiredMessage,
  MAX_TIMING_MS,
  poloReward,
  QUEUE_HEAD_TIMEOUT_MS,
  RECEIPT_STATUS,
  receiptMessage,
  type ReceiptFields,
} from '../protocol/task-evidence.js';
import { nodeAddress, registeredNode, type Handler, type RegistryState } from './context.js';
import { strField, u32Field } from './fields.js';
import { RequestError } from './request-error.js';
import type { NodeRecord } from './store.js';

/**
 * Polo score changes backed by evidence (PROTOCOL.md §9.5, §14 #1). The formats of the signed
 * texts are in protocol/task-evidence.ts. Each (task id, submitter, executor) moves scores once.
 *
 * task_receipt: task_id, submitter_id, executor_id, status ("SUCCEEDED"), time_idle_ms,
 *   time_staged_ms, time_cpu_ms, submitter_signature, executor_signature
 *   → task_receipt_ok: task_id, reward, submitter_id, submitter_score, executor_id, executor_score
 *   (executor + reward, submitter − 1)
 * task_expiry: task_id, submitter_id, executor_id, accepted_at_ms, accept_signature (executor),
 *   submitter_signature → task_expiry_ok: task_id, executor_id, executor_score (executor − 1)
 * task_accept: task_id, submitter_id, executor_id, accepted_at_ms, accept_signature (executor)
 *   → task_accept_ok: task_id (the registry notes when it saw the acceptance)
 *
 * Farming. Two keys can sign each other's receipts at will, so a receipt proves agreement, not
 * work. The reward is therefore bounded by what the registry saw itself:
 * - CPU time counts only up to the time between the registry's sighting of the acceptance and
 *   the receipt (no acceptance seen: none counts, the reward is the base 1);
 * - the k-th receipt between the same two nodes (either role) within 24 h pays the reward halved
 *   k−1 times (at least 1, which the submitter's −1 cancels: the pair gains nothing more);
 * - an executor gains at most DAILY_GAIN_CAP from receipts within 24 h.
 */

/** Points an executor can gain from receipts in any 24 h. */
export const DAILY_GAIN_CAP = 100;
/** Acceptances without a receipt that one executor may have on record. */
export const MAX_OPEN_ACCEPTANCES = 1024;
const DAY_MS = 86_400_000;
/** An acceptance without a receipt is forgotten after the longest time a receipt may claim. */
export const ACCEPTANCE_TTL_MS = MAX_TIMING_MS;

async function pair(
  state: RegistryState,
  msg: Parameters<Handler>[1]['msg'],
): Promise<{ taskId: string; submitter: NodeRecord; executor: NodeRecord }> {
  const taskId = strField(msg, 'task_id');
  if (!isValidTaskId(taskId))
    throw new RequestError('invalid_argument', 'task_id must be a task id (8-4-4-4-12 lower-case hex)');
  const submitterId = u32Field(msg, 'submitter_id');
  const executorId = u32Field(msg, 'executor_id');
  if (submitterId === executorId)
    throw new RequestError('invalid_argument', 'submitter and executor must be different nodes');
  return {
    taskId,
    submitter: await registeredNode(state, submitterId, 'submitter'),
    executor: await registeredNode(state, executorId, 'executor'),
  };
}

function timing(msg: Parameters<Handler>[1]['msg'], key: string): number {
  const v = msg[key];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || v > MAX_TIMING_MS) {
    throw new RequestError('invalid_argument', `${key} must be an integer from 0 to ${MAX_TIMING_MS}`);
  }
  return v;
}

function checkSignature(node: NodeRecord, role: string, text: string, signature: string): void {
  if (signature === '') throw new RequestError('bad_signature', `missing ${role} signature (over "${text}")`);
  if (!verifyChallenge(node.publicKey, text, signature)) {
    throw new RequestError(
      'bad_signature',
      `${role} signature does not verify over "${text}" with node ${node.id}'s key`,
    );
  }
}

export const handleTaskReceipt: Handler = async (state, req) => {
  const { taskId, submitter, executor } = await pair(state, req.msg);
  const status = strField(req.msg, 'status');
  if (status !== RECEIPT_STATUS) throw new RequestError('invalid_argument', `status must be "${RECEIPT_STATUS}"`);
  const fields: ReceiptFields = {
    taskId,
    submitter: submitter.id,
    executor: executor.id,
    timeIdleMs: timing(req.msg, 'time_idle_ms'),
    timeStagedMs: timing(req.msg, 'time_staged_ms'),
    timeCpuMs: timing(req.msg, 'time_cpu_ms'),
  };
  const text = receiptMessage(fields);
  checkSignature(submitter, 'submitter', text, strField(req.msg, 'submitter_signature'));
  checkSignature(executor, 'executor', text, strField(req.msg, 'executor_signature'));
  const { reward, creditedCpuMs } = await boundedReward(state, fields);
  const applied = await state.store.applyTaskEvidence({
    taskId,
    kind: 'receipt',
    submitter: submitter.id,
    executor: executor.id,
    submitterDelta: -1,
    executorDelta: reward,
    at: state.now(),
  });
  if (!applied) throw new RequestError('replay', `evidence for task ${taskId} was already applied`);
  state.log.info(
    {
      task_id: taskId,
      submitter: submitter.id,
      executor: executor.id,
      reward,
      claimed_cpu_ms: fields.timeCpuMs,
      credited_cpu_ms: creditedCpuMs,
    },
    'task receipt applied',
  );
  return {
    type: 'task_receipt_ok',
    task_id: taskId,
    reward,
    credited_cpu_ms: creditedCpuMs,
    submitter_id: submitter.id,
    submitter_score: (await registeredNode(state, submitter.id)).poloScore,
    executor_id: executor.id,
    executor_score: (await registeredNode(state, executor.id)).poloScore,
  };
};

/** The §9.5 reward, bounded as the header says. */
async function boundedReward(
  state: RegistryState,
  f: ReceiptFields,
): Promise<{ reward: number; creditedCpuMs: number }> {
  const acceptance = await state.store.getTaskAcceptance(f.taskId, f.submitter, f.executor);
  const seenFor = acceptance === undefined ? 0 : Math.max(0, state.taskNow() - acceptance.seenAt);
  const creditedCpuMs = Math.min(f.timeCpuMs, seenFor);
  const base = poloReward(f.timeIdleMs, f.timeStagedMs, creditedCpuMs);
  const history = await state.store.receiptHistory(f.submitter, f.executor, state.now() - DAY_MS);
  const diminished = history.pairReceipts >= 30 ? 1 : Math.max(1, Math.floor(base / 2 ** history.pairReceipts));
  return { reward: Math.max(0, Math.min(diminished, DAILY_GAIN_CAP - history.executorGain)), creditedCpuMs };
}

export const handleTaskAccept: Handler = async (state, req) => {
  const { taskId, submitter, executor } = await pair(state, req.msg);
  const acceptedAt = req.msg.accepted_at_ms;
  if (typeof acceptedAt !== 'number' || !Number.isSafeInteger(acceptedAt) || acceptedAt < 0) {
    throw new RequestError('invalid_argument', 'accepted_at_ms must be a Unix time in milliseconds');
  }
  checkSignature(
    executor,
    'executor acceptance',
    acceptMessage(taskId, submitter.id, executor.id, acceptedAt),
    strField(req.msg, 'accept_signature'),
  );
  const result = await state.store.recordTaskAcceptance(
    { taskId, submitter: submitter.id, executor: executor.id, seenAt: state.taskNow() },
    MAX_OPEN_ACCEPTANCES,
  );
  if (result === 'full') {
    throw new RequestError(
      'rate_limited',
      `node ${executor.id} has ${MAX_OPEN_ACCEPTANCES} accepted tasks without a receipt; file receipts first`,
    );
  }
  return { type: 'task_accept_ok', task_id: taskId };
};

export const handleTaskExpiry: Handler = async (state, req) => {
  const { taskId, submitter, executor } = await pair(state, req.msg);
  const acceptedAt = req.msg.accepted_at_ms;
  if (typeof acceptedAt !== 'number' || !Number.isSafeInteger(acceptedAt) || acceptedAt < 0) {
    throw new RequestError('invalid_argument', 'accepted_at_ms must be a Unix time in milliseconds');
  }
  // Without this, an acceptance signature alone would let the submitter cost the executor a point at once.
  const waited = state.taskNow() - acceptedAt;
  if (waited < QUEUE_HEAD_TIMEOUT_MS) {
    throw new RequestError(
      'forbidden',
      `task ${taskId} was accepted ${Math.max(0, Math.round(waited / 1000))} s ago; it expires only after ${QUEUE_HEAD_TIMEOUT_MS / 1000} s at the queue head`,
    );
  }
  checkSignature(
    executor,
    'executor acceptance',
    acceptMessage(taskId, submitter.id, executor.id, acceptedAt),
    strField(req.msg, 'accept_signature'),
  );
  checkSignature(
    submitter,
    'submitter',
    expiredMessage(taskId, submitter.id, executor.id, acceptedAt),
    strField(req.msg, 'submitter_signature'),
  );
  const applied = await state.store.applyTaskEvidence({
    taskId,
    kind: 'expiry',
    submitter: submitter.id,
    executor: executor.id,
    submitterDelta: 0,
    executorDelta: -1,
    at: state.now(),
  });
  if (!applied) throw new RequestError('replay', `evidence for task ${taskId} was already applied`);
  state.log.info({ task_id: taskId, executor: executor.id }, 'task expiry applied');
  return {
    type: 'task_expiry_ok',
    task_id: taskId,
    executor_id: executor.id,
    address: nodeAddress(executor.id),
    executor_score: (await registeredNode(state, executor.id)).poloScore,
  };
};
