import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { signChallenge } from '../../src/crypto/registry-signing.js';
import { encodeJson } from '../../src/protocol/json.js';
import { encodeTypedFrame } from '../../src/protocol/typed-frame.js';
import type { RegistryClient } from '../../src/registry/client.js';
import { Driver } from '../../src/sdk/driver.js';
import { Tasks } from '../../src/sdk/tasks.js';
import { receiptMessage } from '../../src/protocol/task-evidence.js';
import { decodeAck } from '../../src/protocol/tasksubmit.js';
import { FrameReader } from '../../src/services/tasks/frame-reader.js';
import type { Cluster, DaemonHandle } from './cluster.js';
import {
  addDaemonWithClock,
  ctlJson,
  identityOf,
  makeTrust,
  pilotctl,
  readJson,
  registry,
  score,
  setClock,
  setScore,
  startTaskCluster,
} from './tasks-cluster.js';
import { until } from '../wait.js';

/** Sends one raw frame from `from` to `to`'s task port and returns the ACK (or undefined). */
async function rawFrame(
  from: Driver,
  to: DaemonHandle,
  type: number,
  json: Record<string, string | number>,
): Promise<ReturnType<typeof decodeAck> | null> {
  const conn = await from.dial(to.address, 1003);
  const reader = new FrameReader(conn);
  conn.write(encodeTypedFrame({ type, payload: encodeJson(json) }));
  const frame = await reader.next(10_000);
  conn.destroy();
  return frame === null ? null : decodeAck(frame);
}

describe('task submit (port 1003) and the polo score', () => {
  let cluster: Cluster;
  let reg: RegistryClient;
  let a: DaemonHandle; // submitter, clock shared with e
  let b: DaemonHandle; // worker
  let c: DaemonHandle; // third node
  let d: DaemonHandle; // -no-tasksubmit
  let e: DaemonHandle; // worker whose clock the test moves
  let da: Driver, db: Driver, dc: Driver, dd: Driver, de: Driver;
  let ta: Tasks, tb: Tasks, te: Tasks;
  let clockFile: string;
  let offset = 0;

  before(async () => {
    cluster = await startTaskCluster((dir) => join(dir, 'clock-offset'));
    clockFile = join(cluster.dir, 'clock-offset');
    await setClock(clockFile, 0);
    a = await addDaemonWithClock(cluster, 'a', clockFile);
    b = await addDaemonWithClock(cluster, 'b', undefined);
    c = await addDaemonWithClock(cluster, 'c', undefined);
    d = await addDaemonWithClock(cluster, 'd', undefined, ['-no-tasksubmit']);
    e = await addDaemonWithClock(cluster, 'e', clockFile);
    [da, db, dc, dd, de] = await Promise.all([
      Driver.connect(a.socket),
      Driver.connect(b.socket),
      Driver.connect(c.socket),
      Driver.connect(d.socket),
      Driver.connect(e.socket),
    ]);
    for (const [dx, x] of [
      [db, b],
      [dc, c],
      [dd, d],
      [de, e],
    ] as const)
      await makeTrust(da, dx, a, x);
    ta = new Tasks(da);
    tb = new Tasks(db);
    te = new Tasks(de);
    reg = registry(cluster);
  });

  after(async () => {
    reg?.close();
    await Promise.all([da, db, dc, dd, de].map((x) => x?.close()));
    await cluster?.stop();
  });

  it('refuses submissions to a node that has not enabled tasks', async () => {
    const r = await ta.submitTask(b.address, 'hello');
    assert.equal(r.accepted, false);
    assert.equal(r.status, 400);
    assert.match(r.message, /not enabled/);
  });

  it('runs the full lifecycle with a text result, the SDK iterator and a receipt-backed score change', async () => {
    await ctlJson(b, ['enable-tasks']);
    const ac = new AbortController();
    const incoming = tb.incoming({ signal: ac.signal })[Symbol.asyncIterator]();
    const submitted = await ctlJson(a, ['task', 'submit', b.address, '--task', 'summarise the logs']);
    assert.deepEqual(Object.keys(submitted).sort(), ['accepted', 'message', 'status', 'target', 'task', 'task_id']);
    assert.equal(submitted.accepted, true);
    assert.equal(submitted.status, 200);
    const id = String(submitted.task_id);
    const next = await incoming.next();
    assert.equal(next.value?.task_id, id);
    assert.equal(next.value?.from, a.address);
    ac.abort();
    const file = await readJson(join(b.home, 'tasks', 'received', `${id}.json`));
    assert.deepEqual(Object.keys(file), [
      'task_id',
      'task_description',
      'created_at',
      'status',
      'status_justification',
      'from',
      'to',
    ]);
    assert.equal(file.status, 'NEW');

    const accepted = await ctlJson(b, ['task', 'accept', '--id', id]);
    assert.deepEqual(accepted, { message: 'Task accepted and queued', status: 'ACCEPTED', task_id: id });
    const q = await ctlJson(b, ['task', 'queue']);
    assert.equal(q.count, 1);
    await until('ACCEPTED at submitter', async () =>
      (await readJson(join(a.home, 'tasks', 'submitted', `${id}.json`))).status === 'ACCEPTED' ? true : undefined,
    );
    const exec = await ctlJson(b, ['task', 'execute']);
    assert.deepEqual(exec, {
      from: a.address,
      status: 'EXECUTING',
      task_description: 'summarise the logs',
      task_id: id,
    });
    const sent = await ctlJson(b, ['task', 'send-results', '--id', id, '--results', 'all quiet']);
    assert.deepEqual(sent, { sent_to: a.address, sent_type: 'text', status: 'SUCCEEDED', task_id: id });

    assert.equal(await readFile(join(a.home, 'tasks', 'results', `${id}_result.txt`), 'utf8'), 'all quiet');
    const mine = await readJson(join(a.home, 'tasks', 'submitted', `${id}.json`));
    assert.equal(mine.status, 'COMPLETED');
    assert.equal(typeof mine.time_cpu_ms, 'number');
    const theirs = await readJson(join(b.home, 'tasks', 'received', `${id}.json`));
    assert.equal(theirs.status, 'SUCCEEDED');
    for (const k of [
      'accepted_at',
      'staged_at',
      'execute_started_at',
      'completed_at',
      'time_idle_ms',
      'time_staged_ms',
      'time_cpu_ms',
    ])
      assert.ok(k in theirs, k);
    await until('scores moved', async () =>
      (await score(reg, a.nodeId)) === -1 && (await score(reg, b.nodeId)) === 1 ? true : undefined,
    );
    const list = await ctlJson(a, ['task', 'list', '--type', 'submitted']);
    assert.deepEqual(Object.keys((list.tasks as Record<string, unknown>[])[0] ?? {}).sort(), [
      'category',
      'created_at',
      'description',
      'from',
      'status',
      'task_id',
      'to',
    ]);
    const polo = await ctlJson(a, ['polo', String(b.nodeId)]);
    assert.equal(polo.polo_score, 1);
  });

  it("refuses a submitter whose polo score is below the receiver's", async () => {
    const r = await pilotctl(a, ['--json', 'task', 'submit', b.address, '--task', 'again']);
    assert.equal(r.code, 1, 'a refusal is an error');
    assert.equal(r.stdout, '');
    const err = JSON.parse(r.stderr) as { code: string; message: string; hint: string; status: string };
    assert.equal(err.status, 'error');
    assert.equal(err.code, 'refused');
    assert.equal(err.message, `task refused by ${b.address}: Polo score too low: submitter=-1, receiver=1`);
    assert.match(err.hint, /your polo score is -1, the receiver's is 1/);
  });

  it('delivers a file result and refuses disallowed extensions, traversal names and a third node', async () => {
    await setScore(reg, a.nodeId, 100);
    const { task_id: id } = await ta.submitTask(b.address, 'draw a chart');
    await tb.acceptTask(id);
    await tb.executeNext();
    // The receiver enforces names and extensions itself, whatever the sender's CLI checks.
    for (const filename of ['run.sh', '../escape.txt', 'a/b.txt', '.hidden.txt']) {
      const ack = await rawFrame(db, a, 4, {
        task_id: id,
        result_type: 'file',
        filename,
        file_data: 'aGk=',
        completed_at: new Date().toISOString(),
      });
      assert.equal(ack?.status, 400, filename);
    }
    // A third node cannot send results (or status updates) for a task it does not execute.
    const forged = await rawFrame(dc, a, 4, {
      task_id: id,
      result_type: 'text',
      result_text: 'forged',
      completed_at: new Date().toISOString(),
    });
    assert.equal(forged?.status, 400);
    assert.match(forged?.message ?? '', /not the executor/);
    const forgedStatus = await rawFrame(dc, a, 3, { task_id: id, status: 'EXPIRED', justification: 'x' });
    assert.equal(forgedStatus?.status, 400);
    assert.equal((await readJson(join(a.home, 'tasks', 'submitted', `${id}.json`))).status, 'EXECUTING');
    // A traversal task id is not a task id: refused (and not echoed) without touching the disk.
    const traversal = await rawFrame(db, a, 3, {
      task_id: '../../../etc/passwd',
      status: 'ACCEPTED',
      justification: '',
    });
    assert.equal(traversal?.status, 400);
    assert.equal(traversal?.taskId, '');
    assert.match(traversal?.message ?? '', /not a valid task id/);
    await assert.rejects(tb.acceptTask('../x'), /invalid task id/);
    const bad = await pilotctl(b, [
      '--json',
      'task',
      'send-results',
      '--id',
      id,
      '--file',
      join(b.home, 'identity.key'),
    ]);
    assert.equal(bad.code, 2, 'a file the CLI refuses to send is a usage error');

    const report = join(b.home, 'report.md');
    await writeFile(report, '# chart\n');
    const sent = await ctlJson(b, ['task', 'send-results', '--id', id, '--file', report]);
    assert.deepEqual(sent, {
      file_size: 8,
      filename: 'report.md',
      sent_to: a.address,
      sent_type: 'file',
      status: 'SUCCEEDED',
      task_id: id,
    });
    assert.equal(await readFile(join(a.home, 'tasks', 'results', `${id}_report.md`), 'utf8'), '# chart\n');
  });

  it('declines with a justification (and requires one)', async () => {
    const { task_id: id } = await ta.submitTask(b.address, 'mine bitcoin');
    const none = await pilotctl(b, ['--json', 'task', 'decline', '--id', id]);
    assert.equal(none.code, 2, 'a missing --justification is a usage error');
    const r = await ctlJson(b, ['task', 'decline', '--id', id, '--justification', 'not my job']);
    assert.deepEqual(r, { justification: 'not my job', message: 'Task declined', status: 'DECLINED', task_id: id });
    await until('DECLINED at submitter', async () => {
      const t = await readJson(join(a.home, 'tasks', 'submitted', `${id}.json`));
      return t.status === 'DECLINED' && t.status_justification === 'not my job' ? true : undefined;
    });
  });

  it('refuses when the target or this daemon runs with -no-tasksubmit', async () => {
    await assert.rejects(ta.submitTask(d.address, 'x'));
    const r = await pilotctl(d, ['--json', 'task', 'list']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /task service is not running/);
  });

  it('cancels a NEW task nobody answered within a minute', async () => {
    await ctlJson(e, ['enable-tasks']);
    await setScore(reg, a.nodeId, 100);
    const { task_id: id } = await ta.submitTask(e.address, 'wait for me');
    offset += 61_000;
    await setClock(clockFile, offset);
    await until('CANCELLED', async () =>
      (await readJson(join(e.home, 'tasks', 'received', `${id}.json`))).status === 'CANCELLED' ? true : undefined,
    );
    await until('CANCELLED at submitter', async () =>
      (await readJson(join(a.home, 'tasks', 'submitted', `${id}.json`))).status === 'CANCELLED' ? true : undefined,
    );
    await assert.rejects(te.acceptTask(id), /CANCELLED/);
  });

  it("expires the queue head after an hour and takes one point from the receiver, on the submitter's evidence", async () => {
    const before = await score(reg, e.nodeId);
    const { task_id: id } = await ta.submitTask(e.address, 'slow job');
    await te.acceptTask(id);
    await until('ACCEPTED at submitter', async () =>
      (await readJson(join(a.home, 'tasks', 'submitted', `${id}.json`))).status === 'ACCEPTED' ? true : undefined,
    );
    offset += 3_601_000;
    await setClock(clockFile, offset);
    await until('EXPIRED', async () =>
      (await readJson(join(e.home, 'tasks', 'received', `${id}.json`))).status === 'EXPIRED' ? true : undefined,
    );
    await until('receiver -1', async () => ((await score(reg, e.nodeId)) === before - 1 ? true : undefined));
  });

  it('computes the reward from the real timings (30 minutes of execution → 6)', async () => {
    const beforeA = await score(reg, a.nodeId);
    const beforeE = await score(reg, e.nodeId);
    const { task_id: id } = await ta.submitTask(e.address, 'train a model');
    await te.acceptTask(id);
    await te.executeNext();
    offset += 30 * 60_000;
    await setClock(clockFile, offset);
    await new Promise((r) => setTimeout(r, 150));
    await te.sendResults(id, { text: 'done' });
    const t = await te.task(id);
    assert.ok(Number(t.time_cpu_ms) >= 30 * 60_000);
    await until('reward applied', async () =>
      (await score(reg, e.nodeId)) === beforeE + 6 && (await score(reg, a.nodeId)) === beforeA - 1 ? true : undefined,
    );
  });

  it('refuses forged score updates, half-signed and replayed receipts', async () => {
    await assert.rejects(reg.request({ type: 'update_polo_score', node_id: c.nodeId, delta: 1000 }), /admin token/);
    await assert.rejects(reg.request({ type: 'set_polo_score', node_id: c.nodeId, polo_score: 1000 }), /admin token/);
    const [ic, ib] = await Promise.all([identityOf(c), identityOf(b)]);
    const fields = {
      taskId: '0123abcd-0000-1111-2222-333344445555',
      submitter: c.nodeId,
      executor: b.nodeId,
      timeIdleMs: 0,
      timeStagedMs: 0,
      timeCpuMs: 60_000,
    };
    const text = receiptMessage(fields);
    const msg = {
      task_id: fields.taskId,
      submitter_id: c.nodeId,
      executor_id: b.nodeId,
      status: 'SUCCEEDED',
      time_idle_ms: 0,
      time_staged_ms: 0,
      time_cpu_ms: 60_000,
      submitter_signature: signChallenge(ic, text),
      executor_signature: signChallenge(ib, text),
    };
    const scoreB = await score(reg, b.nodeId);
    await assert.rejects(reg.taskReceipt({ ...msg, executor_signature: '' }), /missing executor signature/);
    await assert.rejects(
      reg.taskReceipt({ ...msg, executor_signature: msg.submitter_signature }),
      /executor signature does not verify/,
    );
    await assert.rejects(reg.taskReceipt({ ...msg, time_cpu_ms: 600_000 }), /does not verify/);
    const ok = await reg.taskReceipt(msg);
    // No acceptance of this task reached the registry: its claimed minute of CPU is not credited.
    assert.equal(ok.reward, 1);
    assert.equal(ok.credited_cpu_ms, 0);
    assert.equal(await score(reg, b.nodeId), scoreB + 1);
    await assert.rejects(reg.taskReceipt(msg), /already applied/);
    assert.equal(await score(reg, b.nodeId), scoreB + 1);
  });
});
