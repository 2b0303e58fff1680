import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import { Identity } from '../../src/crypto/identity.js';
import { signChallenge } from '../../src/crypto/registry-signing.js';
import { silentLogger } from '../../src/log.js';
import type { JsonObject } from '../../src/protocol/json.js';
import { SignatureVerifier } from '../../src/registry/auth.js';
import type { RegistryState } from '../../src/registry/context.js';
import { handleRequest } from '../../src/registry/dispatch.js';
import { Liveness } from '../../src/registry/liveness.js';
import { RateLimiter } from '../../src/registry/rate-limit.js';
import { RequestCounter } from '../../src/registry/request-counter.js';
import { SqliteRegistryStore } from '../../src/registry/sqlite-store.js';
import { acceptMessage, expiredMessage, poloReward, receiptMessage } from '../../src/services/tasks/evidence.js';

const TASK = '00112233-4455-6677-8899-aabbccddeeff';

describe('polo reward formula (§9.5)', () => {
  it('gives 1 for an instant task and grows with the logarithm of cpu minutes', () => {
    assert.equal(poloReward(0, 0, 0), 1);
    assert.equal(poloReward(0, 0, 60_000), 2);
    assert.equal(poloReward(0, 0, 30 * 60_000), 6);
    assert.equal(poloReward(0, 0, 3 * 60_000), 3);
  });
  it('lowers the reward for idle and staged time, never below an efficiency of 0.4 or a reward of 1', () => {
    assert.equal(poloReward(60_000, 600_000, 0), 1);
    assert.equal(poloReward(60_000, 600_000, 30 * 60_000), 2);
    assert.equal(poloReward(30_000, 0, 30 * 60_000), 5);
    assert.equal(poloReward(10 * 60_000, 60 * 60_000, 0), 1);
  });
});

describe('registry task evidence', () => {
  let state: RegistryState;
  const call = (msg: JsonObject): JsonObject => handleRequest(state, { msg, remoteIp: '10.0.0.1', remotePort: 5000 });
  const sub = Identity.generate();
  const exe = Identity.generate();
  const other = Identity.generate();
  let s = 0;
  let x = 0;
  let o = 0;
  let taskNow = Date.now();

  beforeEach(() => {
    state = {
      store: new SqliteRegistryStore(':memory:'),
      log: silentLogger(),
      liveness: new Liveness(),
      verifier: new SignatureVerifier(0),
      registerLimiter: new RateLimiter(100, 100),
      adminToken: undefined,
      requireSignedBody: false,
      requests: new RequestCounter(),
      now: () => Date.now(),
      taskNow: () => taskNow,
      notifyHandshake: () => undefined,
    };
    const reg = (id: Identity): number => state.store.createNode({ publicKey: id.publicKeyBase64, owner: '', realAddr: '127.0.0.1:1' }).id;
    [s, x, o] = [reg(sub), reg(exe), reg(other)];
  });

  const receipt = (cpu: number, signers: { s?: Identity; x?: Identity } = { s: sub, x: exe }): JsonObject => {
    const text = receiptMessage({ taskId: TASK, submitter: s, executor: x, timeIdleMs: 0, timeStagedMs: 0, timeCpuMs: cpu });
    return {
      type: 'task_receipt', task_id: TASK, submitter_id: s, executor_id: x, status: 'SUCCEEDED', time_idle_ms: 0, time_staged_ms: 0, time_cpu_ms: cpu,
      submitter_signature: signers.s ? signChallenge(signers.s, text) : '', executor_signature: signers.x ? signChallenge(signers.x, text) : '',
    };
  };
  const scoreOf = (id: number): number | undefined => state.store.getNode(id)?.poloScore;

  it('applies a receipt signed by both sides once: executor + reward, submitter − 1', () => {
    const r = call(receipt(60_000));
    assert.equal(r.type, 'task_receipt_ok');
    assert.equal(r.reward, 2);
    assert.equal(scoreOf(x), 2);
    assert.equal(scoreOf(s), -1);
    const again = call(receipt(60_000));
    assert.equal(again.code, 'replay');
    assert.equal(scoreOf(x), 2);
  });

  it('refuses half-signed, wrongly signed, altered and self-dealing receipts', () => {
    assert.equal(call(receipt(0, { s: sub })).code, 'bad_signature');
    assert.equal(call(receipt(0, { x: exe })).code, 'bad_signature');
    assert.equal(call(receipt(0, { s: sub, x: other })).code, 'bad_signature');
    const altered = { ...receipt(0), time_cpu_ms: 999_999 };
    assert.equal(call(altered).code, 'bad_signature');
    assert.equal(call({ ...receipt(0), executor_id: s }).code, 'invalid_argument');
    assert.equal(call({ ...receipt(0), task_id: '../../etc' }).code, 'invalid_argument');
    assert.equal(call({ ...receipt(0), status: 'EXPIRED' }).code, 'invalid_argument');
    assert.equal(scoreOf(x), 0);
    assert.equal(scoreOf(s), 0);
  });

  it('keeps the reference’s unauthenticated score changes refused', () => {
    assert.equal(call({ type: 'update_polo_score', node_id: o, delta: 50 }).code, 'forbidden');
    assert.equal(call({ type: 'set_polo_score', node_id: o, polo_score: 50 }).code, 'forbidden');
    assert.equal(scoreOf(o), 0);
  });

  it('takes one point from an executor on the executor’s acceptance plus the submitter’s expiry statement', () => {
    const at = 1_700_000_000_000;
    const msg = {
      type: 'task_expiry', task_id: TASK, submitter_id: s, executor_id: x, accepted_at_ms: at,
      accept_signature: signChallenge(exe, acceptMessage(TASK, s, x, at)), submitter_signature: signChallenge(sub, expiredMessage(TASK, s, x, at)),
    };
    assert.equal(call({ ...msg, accept_signature: signChallenge(sub, acceptMessage(TASK, s, x, at)) }).code, 'bad_signature');
    assert.equal(call({ ...msg, submitter_signature: '' }).code, 'bad_signature');
    assert.equal(call({ ...msg, accepted_at_ms: at + 1 }).code, 'bad_signature');
    taskNow = at + 3_599_000;
    const early = call(msg);
    assert.equal(early.code, 'forbidden', 'an acceptance less than an hour old is no evidence of expiry');
    assert.match(String(early.message), /expires only after 3600 s/);
    taskNow = at + 3_600_000;
    assert.equal(call(msg).type, 'task_expiry_ok');
    assert.equal(scoreOf(x), -1);
    assert.equal(call(msg).code, 'replay');
    // Completion and expiry of the same task are exclusive.
    assert.equal(call(receipt(0)).code, 'replay');
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
      const ev = { taskId: TASK, kind: 'receipt' as const, submitter: a, executor: b, submitterDelta: -1, executorDelta: 3, at: 1 };
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
