import { signChallenge, verifyChallenge } from '../../crypto/registry-signing.js';
import { toBase64 } from '../../crypto/base64.js';
import { PilotError } from '../../errors.js';
import { formatAddr, parseAddr, type Addr } from '../../protocol/address.js';
import type { JsonObject } from '../../protocol/json.js';
import type { ServiceContext } from '../types.js';
import { acceptMessage, expiredMessage, receiptMessage, type ReceiptFields } from '../../protocol/task-evidence.js';
import { decodeAck, type Ack } from '../../protocol/tasksubmit.js';
import { FrameReader, writeFrame } from './frame-reader.js';

export const TASK_PORT = 1003;
const DIAL_TIMEOUT_MS = 15_000;
const ANSWER_TIMEOUT_MS = 15_000;

export function addrOf(text: string): Addr | undefined {
  const r = parseAddr(text);
  return r.ok ? r.value : undefined;
}

/**
 * Sends one frame to a peer's task port and waits for its ACK. A peer that closes without one (a
 * Go daemon) counts as having taken the frame: `undefined` is returned.
 */
export async function sendToPeer(ctx: ServiceContext, to: Addr, frame: Uint8Array): Promise<Ack | undefined> {
  const conn = await ctx.net.dial(to, TASK_PORT, { timeoutMs: DIAL_TIMEOUT_MS });
  try {
    const reader = new FrameReader(conn);
    await writeFrame(conn, frame);
    const reply = await reader.next(ANSWER_TIMEOUT_MS);
    return reply === null ? undefined : decodeAck(reply);
  } finally {
    conn.end();
    setTimeout(() => conn.destroy(), 5000).unref();
  }
}

/** Best effort: a status the peer should know about but that changes nothing if it is lost. */
export function notifyPeer(ctx: ServiceContext, to: string, frame: Uint8Array, what: string): void {
  const addr = addrOf(to);
  if (addr === undefined) return;
  sendToPeer(ctx, addr, frame).then(
    (ack) => {
      if (ack !== undefined && ack.status !== 200)
        ctx.log.warn({ to, what, message: ack.message }, 'peer refused task status update');
    },
    (err: unknown) => ctx.log.debug({ to, what, err: (err as Error).message }, 'task status update not delivered'),
  );
}

export function sign(ctx: ServiceContext, text: string): string {
  return signChallenge(ctx.identity, text);
}

export function signReceipt(ctx: ServiceContext, r: ReceiptFields): string {
  return sign(ctx, receiptMessage(r));
}

export function signAcceptance(
  ctx: ServiceContext,
  taskId: string,
  submitter: number,
  executor: number,
  acceptedAtMs: number,
): string {
  return sign(ctx, acceptMessage(taskId, submitter, executor, acceptedAtMs));
}

/** Checks a peer's half of a receipt against the registry's key for it before countersigning. */
export async function verifyPeer(ctx: ServiceContext, node: number, text: string, signature: string): Promise<boolean> {
  const found = await ctx.keys.get(node);
  return found.status === 'ok' && verifyChallenge(toBase64(found.key), text, signature);
}

function receiptRequest(r: ReceiptFields, submitterSig: string, executorSig: string): JsonObject {
  return {
    task_id: r.taskId,
    submitter_id: r.submitter,
    executor_id: r.executor,
    status: 'SUCCEEDED',
    time_idle_ms: r.timeIdleMs,
    time_staged_ms: r.timeStagedMs,
    time_cpu_ms: r.timeCpuMs,
    submitter_signature: submitterSig,
    executor_signature: executorSig,
  };
}

/** Hands a completed receipt to the registry; a receipt already applied (by the other side) is fine. */
export async function fileReceipt(
  ctx: ServiceContext,
  r: ReceiptFields,
  submitterSig: string,
  executorSig: string,
): Promise<JsonObject | undefined> {
  try {
    const reply = await ctx.registry.taskReceipt(receiptRequest(r, submitterSig, executorSig));
    ctx.log.info({ task_id: r.taskId, reward: reply.reward }, 'task receipt applied');
    return reply;
  } catch (err) {
    ctx.log.debug({ task_id: r.taskId, err: (err as Error).message }, 'task receipt not applied');
    return undefined;
  }
}

/**
 * Tells the registry that this executor accepted a task: a receipt's CPU time counts only up to
 * the time the registry saw pass since then. Best effort (a Go registry does not know it).
 */
export function reportAcceptance(
  ctx: ServiceContext,
  p: { taskId: string; submitter: number; executor: number; acceptedAtMs: number; acceptSignature: string },
): void {
  ctx.registry
    .taskAccept({
      task_id: p.taskId,
      submitter_id: p.submitter,
      executor_id: p.executor,
      accepted_at_ms: p.acceptedAtMs,
      accept_signature: p.acceptSignature,
    })
    .catch((err: unknown) =>
      ctx.log.debug({ task_id: p.taskId, err: (err as Error).message }, 'task acceptance not recorded by the registry'),
    );
}

export async function fileExpiry(
  ctx: ServiceContext,
  p: { taskId: string; submitter: number; executor: number; acceptedAtMs: number; acceptSignature: string },
): Promise<void> {
  const submitterSig = sign(ctx, expiredMessage(p.taskId, p.submitter, p.executor, p.acceptedAtMs));
  try {
    await ctx.registry.taskExpiry({
      task_id: p.taskId,
      submitter_id: p.submitter,
      executor_id: p.executor,
      accepted_at_ms: p.acceptedAtMs,
      accept_signature: p.acceptSignature,
      submitter_signature: submitterSig,
    });
    ctx.log.info({ task_id: p.taskId, executor: p.executor }, 'task expiry reported');
  } catch (err) {
    ctx.log.warn({ task_id: p.taskId, err: (err as Error).message }, 'task expiry not applied');
  }
}

export function selfAddr(ctx: ServiceContext): string {
  return formatAddr(ctx.localAddr);
}

export function refused(message: string): PilotError {
  return new PilotError('refused', message);
}
