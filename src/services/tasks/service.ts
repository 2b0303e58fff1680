import { PilotError, toPilotError } from '../../errors.js';
import { addrEquals, formatAddr } from '../../protocol/address.js';
import type { JsonObject } from '../../protocol/json.js';
import {
  decodeTaskRequest,
  encodeAck,
  encodeSubmitResponse,
  ExtFrameType,
  extString,
  isValidTaskId,
  jsonFrame,
  payloadObject,
  TaskFrameType,
} from '../../protocol/tasksubmit.js';
import type { TypedFrame } from '../../protocol/typed-frame.js';
import type { PilotConn, PilotListener } from '../../pilot-net.js';
import type { RunningService, ServiceContext } from '../types.js';
import { listEntry, TaskBook } from './book.js';
import { taskClock } from '../../config/test-clock.js';
import { SerialQueue, type TaskCore, type TaskStats } from './core.js';
import { isoTime, TaskDirs, type TaskCategory, type TaskFile } from './files.js';
import { cancel, handleLocal } from './local.js';
import { notifyPeer, TASK_PORT } from './peer.js';
import { handleResults, handleStatusUpdate, handleSubmit, isRemoteFrame } from './remote.js';
import { FrameReader, writeFrame } from './frame-reader.js';

const FIRST_FRAME_TIMEOUT_MS = 30_000;
const SWEEP_INTERVAL_MS = 1000;
const MAX_WATCHERS = 64;

/**
 * Task submit on port 1003 (PROTOCOL.md §9.5). The single owner of `<home>/tasks/` while the
 * daemon runs: peers reach it with the reference's frames, the local CLI and SDK with LOCAL
 * frames on a stream the daemon's own address opened (see wire.ts). Timeouts (1 minute to
 * answer a NEW task, 1 hour at the queue head) are enforced here on the injectable clock.
 */
export async function startTaskSubmit(ctx: ServiceContext): Promise<RunningService> {
  const now = taskClock(ctx.now);
  const dirs = new TaskDirs(ctx.home);
  try {
    const removed = await dirs.removeLeftovers();
    if (removed.length > 0) ctx.log.info({ removed }, 'removed task files an interrupted write left behind');
  } catch (err) {
    ctx.log.warn({ err: (err as Error).message }, 'could not remove task files an interrupted write left behind');
  }
  const book = new TaskBook(dirs, now);
  await book.load();
  const stats: TaskStats = {
    submitted: 0,
    received: 0,
    refused: 0,
    completed: 0,
    cancelled: 0,
    expired: 0,
    receipts_filed: 0,
  };
  const watchers = new Set<PilotConn>();
  const core: TaskCore = {
    ctx,
    book,
    stats,
    serial: new SerialQueue(),
    now,
    emit(category: TaskCategory, task: TaskFile) {
      const frame = jsonFrame(ExtFrameType.LocalEvent, { event: 'task', task: { ...listEntry(category, task) } });
      for (const w of watchers) if (!w.writableEnded) w.write(frame);
    },
  };
  const listener: PilotListener = await ctx.net.listen(TASK_PORT);
  listener.on('connection', (conn) => void serve(core, conn, watchers));
  const timer = setInterval(() => void sweep(core), SWEEP_INTERVAL_MS);
  timer.unref();
  return {
    name: 'tasksubmit',
    stats: () => ({ ...stats, pending: book.pendingCount(), queue: book.queue.length }),
    async close() {
      clearInterval(timer);
      for (const w of watchers) w.destroy();
      await listener.close();
    },
  };
}

/**
 * The answer to a frame refused before any handler saw it, in the frame its sender reads: a
 * SUBMIT response (status 400) to a SUBMIT — what the reference's CLI waits for — a LOCAL reply to
 * a LOCAL request, an ACK (400) to anything else (a Go sender reads nothing and closes).
 */
function refusal(type: number | undefined, message: string, taskId: string): Uint8Array {
  if (type === TaskFrameType.Submit) return encodeSubmitResponse({ taskId, status: 400, message });
  if (type === ExtFrameType.Local) return jsonFrame(ExtFrameType.Local, { ok: false, code: 'refused', message });
  return encodeAck({ taskId, status: 400, message });
}

/** Why the first frame could not be read, as its sender should hear it. */
function readFailure(err: unknown): string {
  const e = toPilotError(err);
  return e.code === 'timeout' ? `no task frame within ${FIRST_FRAME_TIMEOUT_MS} ms` : e.message;
}

async function serve(core: TaskCore, conn: PilotConn, watchers: Set<PilotConn>): Promise<void> {
  conn.on('error', () => conn.destroy());
  const reader = new FrameReader(conn, { keepOpenOnError: true });
  // Every refusal says why before the close; the connection is destroyed 5 s later at the latest.
  const refuse = async (type: number | undefined, message: string, taskId = ''): Promise<void> => {
    core.stats.refused++;
    await writeFrame(conn, refusal(type, message, taskId)).catch(() => undefined);
    conn.end();
  };
  try {
    let frame: TypedFrame | null;
    try {
      frame = await reader.next(FIRST_FRAME_TIMEOUT_MS);
    } catch (err) {
      // Longer than 16 MiB, or nothing within the timeout.
      await refuse(reader.firstType, readFailure(err));
      return;
    }
    if (frame === null) {
      // The peer closed without a frame: nothing to answer, our side closes too.
      conn.end();
      return;
    }
    const local = addrEquals(conn.remoteAddr, core.ctx.localAddr);
    if (frame.type === ExtFrameType.Local) {
      if (!local) {
        await refuse(frame.type, 'LOCAL task frames are accepted only from this node');
        return;
      }
      const req = payloadObject(frame);
      if (req?.op === 'watch') {
        if (watchers.size >= MAX_WATCHERS) {
          await writeFrame(
            conn,
            jsonFrame(ExtFrameType.Local, { ok: false, code: 'rate_limited', message: 'too many task watchers' }),
          );
          return;
        }
        watchers.add(conn);
        conn.once('close', () => watchers.delete(conn));
        await writeFrame(conn, jsonFrame(ExtFrameType.Local, { ok: true, data: { watching: true } }));
        // Open until the client closes it (or goes away): then our side closes as well.
        if (conn.readableEnded) conn.end();
        else conn.once('end', () => conn.end());
        return;
      }
      let reply: JsonObject;
      try {
        reply = { ok: true, data: await handleLocal(core, req) };
      } catch (err) {
        const e = toPilotError(err);
        reply = { ok: false, code: e.code, message: e.message, ...(e.hint !== undefined ? { hint: e.hint } : {}) };
      }
      await writeFrame(conn, jsonFrame(ExtFrameType.Local, reply));
      conn.end();
      return;
    }
    if (!isRemoteFrame(frame.type)) {
      await refuse(frame.type, `unsupported task frame type ${frame.type}`);
      return;
    }
    const decoded = decodeTaskRequest(frame);
    if (!decoded.ok) {
      // An invalid task id is never echoed (nor used): the reply carries '' unless the id was valid.
      const id = extString(frame, 'task_id');
      await refuse(frame.type, decoded.error.message, isValidTaskId(id) ? id : '');
      return;
    }
    const from = conn.remoteAddr;
    const d = decoded.value;
    const reply =
      d.kind === 'Submit'
        ? await handleSubmit(core, from, d.message)
        : d.kind === 'StatusUpdate'
          ? await handleStatusUpdate(core, from, d.message, frame)
          : await handleResults(core, from, d.message, frame);
    await writeFrame(conn, reply).catch(() => undefined);
    conn.end();
  } catch (err) {
    core.ctx.log.debug({ err: (err as Error).message, from: formatAddr(conn.remoteAddr) }, 'task connection failed');
    conn.destroy();
    if (!(err instanceof PilotError)) core.ctx.log.warn({ err }, 'task request failed');
  } finally {
    if (!watchers.has(conn)) setTimeout(() => conn.destroy(), 5000).unref();
  }
}

/** NEW tasks unanswered for a minute are CANCELLED; the queue head waiting over an hour EXPIRES. */
async function sweep(core: TaskCore): Promise<void> {
  try {
    await core.serial.run(async () => {
      for (const t of core.book.unanswered()) await cancel(core, t);
      for (let head = core.book.expiredHead(); head !== undefined; head = core.book.expiredHead()) {
        const why = 'Task expired: not executed within 1 hour at the head of the queue';
        const next: TaskFile = { ...head, status: 'EXPIRED', status_justification: why };
        await core.book.save('received', next);
        core.book.dequeue(head.task_id);
        core.stats.expired++;
        notifyPeer(
          core.ctx,
          head.from,
          jsonFrame(3, { task_id: head.task_id, status: 'EXPIRED', justification: why }),
          'EXPIRED',
        );
        core.emit('received', next);
        const mine = core.book.submitted.get(head.task_id);
        if (mine !== undefined)
          await core.book.save('submitted', {
            ...mine,
            status: 'EXPIRED',
            status_justification: why,
            completed_at: isoTime(core.now()),
          });
      }
    });
  } catch (err) {
    core.ctx.log.warn({ err: (err as Error).message }, 'task sweep failed');
  }
}
