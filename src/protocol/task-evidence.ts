/**
 * Evidence that moves a polo score (PROTOCOL.md §9.5, §14 #1): messages signed with the nodes'
 * Ed25519 identity keys, checked by the registry against the keys it stores. Shared by the task
 * service (which signs) and the registry (which verifies and applies each task id once).
 *
 * Completion receipt, signed by BOTH the submitter and the executor over the same text:
 *   task_receipt:<task_id>:<submitter>:<executor>:<status>:<time_idle_ms>:<time_staged_ms>:<time_cpu_ms>
 * (`status` is always SUCCEEDED; node ids in decimal.)
 *
 * Expiry penalty: the executor's acceptance, sent with its ACCEPTED status update,
 *   task_accept:<task_id>:<submitter>:<executor>:<accepted_at_ms>
 * plus the submitter's statement
 *   task_expired:<task_id>:<submitter>:<executor>:<accepted_at_ms>
 */

export const RECEIPT_STATUS = 'SUCCEEDED';

/** An accepted task expires after this long at the head of the executor's queue (PROTOCOL.md §9.5). */
export const QUEUE_HEAD_TIMEOUT_MS = 3_600_000;

export interface ReceiptFields {
  readonly taskId: string;
  readonly submitter: number;
  readonly executor: number;
  readonly timeIdleMs: number;
  readonly timeStagedMs: number;
  readonly timeCpuMs: number;
}

export function receiptMessage(r: ReceiptFields): string {
  return `task_receipt:${r.taskId}:${r.submitter}:${r.executor}:${RECEIPT_STATUS}:${r.timeIdleMs}:${r.timeStagedMs}:${r.timeCpuMs}`;
}

export function acceptMessage(taskId: string, submitter: number, executor: number, acceptedAtMs: number): string {
  return `task_accept:${taskId}:${submitter}:${executor}:${acceptedAtMs}`;
}

export function expiredMessage(taskId: string, submitter: number, executor: number, acceptedAtMs: number): string {
  return `task_expired:${taskId}:${submitter}:${executor}:${acceptedAtMs}`;
}

/** Upper bound for each timing field in a receipt (one week): beyond it the receipt is refused. */
export const MAX_TIMING_MS = 7 * 86_400_000;

const clamp = (v: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, v));

/** The reward formula of §9.5; always at least 1. */
export function poloReward(timeIdleMs: number, timeStagedMs: number, timeCpuMs: number): number {
  const cpuMin = Math.max(0, timeCpuMs) / 60_000;
  const bonus = Math.log2(1 + cpuMin);
  const idle = clamp((timeIdleMs / 1000 / 60) * 0.3, 0, 0.3);
  const staged = clamp((timeStagedMs / 1000 / 600) * 0.3, 0, 0.3);
  const eff = Math.max(1 - idle - staged, 0.4);
  return Math.max(1, Math.floor((1 + bonus) * eff + 0.5));
}
