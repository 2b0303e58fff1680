import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import { Identity } from '../../src/crypto/identity.js';
import { signChallenge } from '../../src/crypto/registry-signing.js';
import { silentLogger } from '../../src/log.js';
import type { JsonObject } from '../../src/protocol/json.js';
import { SignatureVerifier } from '../../src/registry/auth.js';
import { DAILY_GAIN_CAP } from '../../src/registry/handlers-polo.js';
import type { RegistryState } from '../../src/registry/context.js';
import { handleRequest } from '../../src/registry/dispatch.js';
import { Liveness } from '../../src/registry/liveness.js';
import { KeyedRateLimiter } from '../../src/rate-limit.js';
import { RequestCounter } from '../../src/registry/request-counter.js';
import { embeddedStore } from '../../src/registry/embedded-store.js';
import { SqliteRegistryStore } from '../../src/registry/sqlite-store.js';
import { acceptMessage, expiredMessage, poloReward, receiptMessage } from '../../src/protocol/task-evidence.js';

const TASK = '00112233-4455-6677-8899-aabbccddeeff';

describe('polo reward formula (§9.5)', () => {
  it('gives 1 for an instant task and grows with the logarithm of cpu minutes', async () => {
    assert.equal(poloReward(0, 0, 0), 1);
    assert.equal(poloReward(0, 0, 60_000), 2);
    assert.equal(poloReward(0, 0, 30 * 60_000), 6);
    assert.equal(poloReward(0, 0, 3 * 60_000), 3);
  });
  it('lowers the reward for idle and staged time, never below an efficiency of 0.4 or a reward of 1', async () => {
    assert.equal(poloReward(60_000, 600_000, 0), 1);
    assert.equal(poloReward(60_000, 600_000, 30 * 60_000), 2);
    assert.equal(poloReward(30_000, 0, 30 * 60_000), 5);
    assert.equal(poloReward(10 * 60_000, 60 * 60_000, 0), 1);
  });
});

describe('registry task evidence', () => {
  let state: RegistryState;
  const call = (msg: JsonObject): Promise<JsonObject> =>
    handleRequest(state, { msg, remoteIp: '10.0.0.1', remotePort: 5000 });
  const sub = Identity.generate();
  const exe = Identity.generate();
  const other = Identity.generate();
  let s = 0;
  let x = 0;
  let o = 0;
  let taskNow = Date.now();

  let db: SqliteRegistryStore;

  beforeEach(() => {
    db = new SqliteRegistryStore(':memory:');
    state = {
      store: embeddedStore(db),
      log: silentLogger(),
      liveness: new Liveness(),
      verifier: new SignatureVerifier(0),
      registerLimiter: new KeyedRateLimiter<string>(100, 100),
      adminToken: undefined,
      requireSignedBody: false,
      requests: new RequestCounter(),
      now: () => Date.now(),
      taskNow: () => taskNow,
      notifyHandshake: () => undefined,
    };
    const reg = (id: Identity): number =>
      db.createNode({ publicKey: id.publicKeyBase64, owner: '', realAddr: '127.0.0.1:1' }).id;
    [s, x, o] = [reg(sub), reg(exe), reg(other)];
  });

  const receipt = (
    cpu: number,
    signers: { s?: Identity; x?: Identity } = { s: sub, x: exe },
    ids = { task: TASK, s, x },
  ): JsonObject => {
    const text = receiptMessage({
      taskId: ids.task,
      submitter: ids.s,
      executor: ids.x,
      timeIdleMs: 0,
      timeStagedMs: 0,
      timeCpuMs: cpu,
    });
    return {
      type: 'task_receipt',
      task_id: ids.task,
      submitter_id: ids.s,
      executor_id: ids.x,
      status: 'SUCCEEDED',
      time_idle_ms: 0,
      time_staged_ms: 0,
      time_cpu_ms: cpu,
      submitter_signature: signers.s ? signChallenge(signers.s, text) : '',
      executor_signature: signers.x ? signChallenge(signers.x, text) : '',
    };
  };
  /** The executor's acceptance, as its daemon reports it to the registry. */
  const accept = (executor: Identity, ids = { task: TASK, s, x }): Promise<JsonObject> =>
    call({
      type: 'task_accept',
      task_id: ids.task,
      submitter_id: ids.s,
      executor_id: ids.x,
      accepted_at_ms: 1,
      accept_signature: signChallenge(executor, acceptMessage(ids.task, ids.s, ids.x, 1)),
    });
  const taskId = (i: number): string => `00000000-0000-4000-8000-${i.toString(16).padStart(12, '0')}`;
  const scoreOf = (id: number): number | undefined => db.getNode(id)?.poloScore;

  it('applies a receipt signed by both sides once: executor + reward, submitter − 1', async () => {
    assert.equal((await accept(exe)).type, 'task_accept_ok');
    taskNow += 60_000;
    const r = await call(receipt(60_000));
    assert.equal(r.type, 'task_receipt_ok');
    assert.equal(r.credited_cpu_ms, 60_000);
    assert.equal(r.reward, 2);
    assert.equal(scoreOf(x), 2);
    assert.equal(scoreOf(s), -1);
    const again = await call(receipt(60_000));
    assert.equal(again.code, 'replay');
    assert.equal(scoreOf(x), 2);
  });

  it('refuses half-signed, wrongly signed, altered and self-dealing receipts', async () => {
    assert.equal((await call(receipt(0, { s: sub }))).code, 'bad_signature');
    assert.equal((await call(receipt(0, { x: exe }))).code, 'bad_signature');
    assert.equal((await call(receipt(0, { s: sub, x: other }))).code, 'bad_signature');
    const altered = { ...receipt(0), time_cpu_ms: 999_999 };
    assert.equal((await call(altered)).code, 'bad_signature');
    assert.equal((await call({ ...receipt(0), executor_id: s })).code, 'invalid_argument');
    assert.equal((await call({ ...receipt(0), task_id: '../../etc' })).code, 'invalid_argument');
    assert.equal((await call({ ...receipt(0), status: 'EXPIRED' })).code, 'invalid_argument');
    assert.equal(scoreOf(x), 0);
    assert.equal(scoreOf(s), 0);
  });

  it('credits no more CPU time than the registry saw between acceptance and receipt', async () => {
    assert.equal((await accept(sub)).code, 'bad_signature', 'only the executor can accept');
    assert.equal((await accept(exe)).type, 'task_accept_ok');
    taskNow += 2_000;
    const r = await call(receipt(7 * 86_400_000));
    assert.equal(r.credited_cpu_ms, 2_000);
    assert.equal(r.reward, 1);
    // Without an acceptance on record nothing is credited.
    const ids = { task: taskId(1), s, x };
    const none = await call(receipt(60 * 60_000, { s: sub, x: exe }, ids));
    assert.equal(none.credited_cpu_ms, 0);
    assert.equal(none.reward, 1);
  });

  it('attack: two fresh keys farming each other with week-long receipts gain nothing', async () => {
    // The probe that found this: +280 in 44 ms. Every receipt now has its acceptance too.
    for (let i = 0; i < 40; i++) {
      const [submitter, executor, sId, xId] = i % 2 === 0 ? [sub, exe, s, x] : [exe, sub, x, s];
      const ids = { task: taskId(100 + i), s: sId, x: xId };
      assert.equal((await accept(executor, ids)).type, 'task_accept_ok');
      assert.equal((await call(receipt(7 * 86_400_000, { s: submitter, x: executor }, ids))).type, 'task_receipt_ok');
    }
    assert.equal((scoreOf(s) ?? 0) + (scoreOf(x) ?? 0), 0, 'the pair as a whole gained nothing');
  });

  it('attack: farming with real waiting is bounded per pair and per day', async () => {
    const rewards: number[] = [];
    for (let i = 0; i < 8; i++) {
      const ids = { task: taskId(200 + i), s, x };
      await accept(exe, ids);
    }
    taskNow += 60 * 60_000; // an hour of "work" for eight tasks at once
    for (let i = 0; i < 8; i++)
      rewards.push(
        (await call(receipt(60 * 60_000, { s: sub, x: exe }, { task: taskId(200 + i), s, x }))).reward as number,
      );
    assert.deepEqual(rewards, [7, 3, 1, 1, 1, 1, 1, 1], 'halved for every earlier receipt of the pair within 24 h');
    // Many submitters cannot lift one executor past the daily cap.
    let gained = rewards.reduce((a, b) => a + b, 0);
    for (let i = 0; i < 40; i++) {
      const helper = Identity.generate();
      const h = db.createNode({ publicKey: helper.publicKeyBase64, owner: '', realAddr: '127.0.0.1:1' }).id;
      const ids = { task: taskId(300 + i), s: h, x };
      await accept(exe, ids);
      taskNow += 60 * 60_000;
      gained += (await call(receipt(60 * 60_000, { s: helper, x: exe }, ids))).reward as number;
    }
    assert.equal(gained, DAILY_GAIN_CAP);
    assert.equal(scoreOf(x), DAILY_GAIN_CAP);
  });

  it('keeps the reference’s unauthenticated score changes refused', async () => {
    assert.equal((await call({ type: 'update_polo_score', node_id: o, delta: 50 })).code, 'forbidden');
    assert.equal((await call({ type: 'set_polo_score', node_id: o, polo_score: 50 })).code, 'forbidden');
    assert.equal(scoreOf(o), 0);
  });

  it('takes one point from an executor on the executor’s acceptance plus the submitter’s expiry statement', async () => {
    const at = 1_700_000_000_000;
    const msg = {
      type: 'task_expiry',
      task_id: TASK,
      submitter_id: s,
      executor_id: x,
      accepted_at_ms: at,
      accept_signature: signChallenge(exe, acceptMessage(TASK, s, x, at)),
      submitter_signature: signChallenge(sub, expiredMessage(TASK, s, x, at)),
    };
    assert.equal(
      (await call({ ...msg, accept_signature: signChallenge(sub, acceptMessage(TASK, s, x, at)) })).code,
      'bad_signature',
    );
    assert.equal((await call({ ...msg, submitter_signature: '' })).code, 'bad_signature');
    assert.equal((await call({ ...msg, accepted_at_ms: at + 1 })).code, 'bad_signature');
    taskNow = at + 3_599_000;
    const early = await call(msg);
    assert.equal(early.code, 'forbidden', 'an acceptance less than an hour old is no evidence of expiry');
    assert.match(String(early.message), /expires only after 3600 s/);
    taskNow = at + 3_600_000;
    assert.equal((await call(msg)).type, 'task_expiry_ok');
    assert.equal(scoreOf(x), -1);
    assert.equal((await call(msg)).code, 'replay');
    // Completion and expiry of the same task are exclusive.
    assert.equal((await call(receipt(0))).code, 'replay');
    assert.equal(scoreOf(x), -1);
  });

  it('persists applied evidence across store reopen', async () => {
    const { mkdtemp, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const dir = await mkdtemp(join(tmpdir(), 'polo-'));
    try {
      const path = join(dir, 'r.db');
      let store = new SqliteRegistryStore(path);
      const a = store.createNode({ publicKey: sub.publicKeyBase64, owner: '', realAddr: '' }).id;
      const b = store.createNode({ publicKey: exe.publicKeyBase64, owner: '', realAddr: '' }).id;
      const ev = {
        taskId: TASK,
        kind: 'receipt' as const,
        submitter: a,
        executor: b,
        submitterDelta: -1,
        executorDelta: 3,
        at: 1,
      };
      assert.equal(store.applyTaskEvidence(ev), true);
      store.close();
      store = new SqliteRegistryStore(path);
      assert.equal(store.applyTaskEvidence(ev), false);
      assert.equal(store.getNode(b)?.poloScore, 3);
      store.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
