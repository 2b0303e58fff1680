import assert from 'node:assert/strict';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { writeFileAtomic } from '../../src/crypto/atomic-file.js';
import { DataType, encodeFilePayload } from '../../src/protocol/dataexchange.js';
import { fail } from '../../src/protocol/result.js';
import { Coalescer } from '../../src/services/dataexchange/coalesce.js';
import { DirSyncGroup } from '../../src/services/dataexchange/dir-sync.js';
import { FrameIntake, type FrameInput, type IntakeDeps } from '../../src/services/dataexchange/intake.js';
import { OrderedReplies, type Admission, type PipelineIo } from '../../src/services/dataexchange/pipeline.js';
import { SenderQuota, senderRateLimiter } from '../../src/services/dataexchange/quota.js';
import { ServiceState } from '../../src/services/dataexchange/state.js';
import type { StoredItem } from '../../src/services/dataexchange/store.js';
import { ackText, IDEMPOTENCY_KEY_TYPE } from '../../src/protocol/dataexchange.js';

interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
  reject(err: Error): void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Lets every pending promise callback run. */
const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

/** A fake connection around a pipeline: records what is sent and whether it reads. */
class FakeConn<T> implements PipelineIo<T> {
  readonly sent: string[] = [];
  ended = false;
  endedWith: string | undefined;
  failed: unknown;
  reading = true;
  pauses = 0;
  writeBufferFull = false;

  constructor(
    readonly admit: (input: T) => Promise<Admission>,
    readonly sizeOf: (input: T) => number = () => 1,
  ) {}

  send(reply: string, last: boolean): boolean {
    this.sent.push(reply);
    if (last) this.endedWith = reply;
    return !this.writeBufferFull;
  }
  end(): void {
    this.ended = true;
  }
  fail(err: unknown): void {
    this.failed = err;
  }
  pause(): void {
    this.reading = false;
    this.pauses++;
  }
  resume(): void {
    this.reading = true;
  }
}

describe('ordered reply pipeline', () => {
  it('sends replies in input order when later work finishes first, and stops reading while full', async () => {
    const work = new Map<number, Deferred<string>>();
    const admitted: number[] = [];
    const conn = new FakeConn<number>(async (n) => {
      admitted.push(n);
      const d = deferred<string>();
      work.set(n, d);
      return { reply: d.promise };
    });
    const pipeline = new OrderedReplies(conn, { maxInFlight: 3, maxInFlightBytes: 1000 });
    pipeline.push([1, 2, 3, 4, 5]);
    await settle();
    assert.deepEqual(admitted, [1, 2, 3], 'only maxInFlight inputs are admitted');
    assert.equal(conn.reading, false, 'reading stops while inputs wait');
    work.get(3)?.resolve('r3');
    work.get(2)?.resolve('r2');
    await settle();
    assert.deepEqual(conn.sent, [], 'nothing is sent before the first reply');
    work.get(1)?.resolve('r1');
    await settle();
    assert.deepEqual(conn.sent, ['r1', 'r2', 'r3']);
    assert.deepEqual(admitted, [1, 2, 3, 4, 5]);
    assert.equal(conn.reading, true, 'reading resumes once there is room');
    work.get(5)?.resolve('r5');
    pipeline.endOfInput();
    await settle();
    assert.equal(conn.ended, false, 'the connection stays open until every reply is sent');
    work.get(4)?.resolve('r4');
    await settle();
    assert.deepEqual(conn.sent, ['r1', 'r2', 'r3', 'r4', 'r5']);
    assert.equal(conn.ended, true);
  });

  it('bounds the bytes in flight but always admits one input', async () => {
    const work: Deferred<string>[] = [];
    const conn = new FakeConn<number>(
      async () => {
        const d = deferred<string>();
        work.push(d);
        return { reply: d.promise };
      },
      (n) => n,
    );
    const pipeline = new OrderedReplies(conn, { maxInFlight: 16, maxInFlightBytes: 100 });
    pipeline.push([500, 10]);
    await settle();
    assert.equal(work.length, 1, 'an input larger than the bound is admitted alone');
    work[0]?.resolve('big');
    await settle();
    assert.equal(work.length, 2);
    assert.deepEqual(conn.sent, ['big']);
  });

  it('sends the closing reply after the replies before it and admits nothing later', async () => {
    const slow = deferred<string>();
    const admitted: string[] = [];
    const conn = new FakeConn<string>(async (input) => {
      admitted.push(input);
      if (input === 'bad') return { reply: Promise.resolve('ERR frame malformed'), last: true };
      return { reply: input === 'slow' ? slow.promise : Promise.resolve(`ACK ${input}`) };
    });
    const pipeline = new OrderedReplies(conn, { maxInFlight: 16, maxInFlightBytes: 1000 });
    pipeline.push(['slow', 'fast', 'bad', 'after']);
    await settle();
    assert.deepEqual(conn.sent, []);
    slow.resolve('ACK slow');
    await settle();
    assert.deepEqual(conn.sent, ['ACK slow', 'ACK fast', 'ERR frame malformed']);
    assert.equal(conn.endedWith, 'ERR frame malformed');
    assert.deepEqual(admitted, ['slow', 'fast', 'bad']);
    pipeline.push(['later']);
    await settle();
    assert.deepEqual(admitted, ['slow', 'fast', 'bad']);
    assert.equal(conn.reading, false);
  });

  it('stops reading while the write buffer is full', async () => {
    const conn = new FakeConn<number>(async (n) => ({ reply: Promise.resolve(`r${n}`) }));
    conn.writeBufferFull = true;
    const pipeline = new OrderedReplies(conn, { maxInFlight: 4, maxInFlightBytes: 1000 });
    pipeline.push([1]);
    await settle();
    assert.equal(conn.reading, false);
    conn.writeBufferFull = false;
    pipeline.writable();
    assert.equal(conn.reading, true);
  });

  it('reports a rejected reply as a failure and sends nothing more', async () => {
    const conn = new FakeConn<number>(async (n) => ({
      reply: n === 1 ? Promise.reject(new Error('bug')) : Promise.resolve('ok'),
    }));
    const pipeline = new OrderedReplies(conn, { maxInFlight: 4, maxInFlightBytes: 1000 });
    pipeline.push([1, 2]);
    await settle();
    assert.ok(conn.failed instanceof Error);
    assert.deepEqual(conn.sent, []);
  });
});

interface StoreCall {
  readonly kind: 'message' | 'file';
  readonly content: string;
  readonly done: Deferred<StoredItem>;
}

/** FrameIntake over fakes whose stores finish only when the test says so. */
interface FakeOptions {
  readonly quotaBytes?: number;
  readonly scanUsage?: () => Promise<ReadonlyMap<string, number>>;
  /** The clock; at 0 (the default) the quota is never recounted, as right after a recount. */
  readonly now?: number;
}

interface FakeIntake {
  readonly intake: FrameIntake;
  readonly calls: StoreCall[];
  readonly seen: Set<string>;
  readonly quota: SenderQuota;
  saves(): number;
}

function fakeIntake({
  quotaBytes = 1_000_000,
  scanUsage = async () => new Map(),
  now = 0,
}: FakeOptions = {}): FakeIntake {
  const calls: StoreCall[] = [];
  const seen = new Set<string>();
  let saves = 0;
  const quota = new SenderQuota(quotaBytes);
  const pending = (kind: StoreCall['kind'], content: string): Promise<StoredItem> => {
    const done = deferred<StoredItem>();
    calls.push({ kind, content, done });
    return done.promise;
  };
  const deps: IntakeDeps = {
    store: {
      storeMessageText: (_type, text) => pending('message', text),
      storeFile: (name, data) => pending('file', `${name}:${Buffer.from(data).toString()}`),
    },
    state: {
      hasSeen: (sender, key) => seen.has(`${sender}/${key}`),
      markSeen: (sender, key) => void seen.add(`${sender}/${key}`),
      recordFile: () => undefined,
      save: async () => {
        saves++;
      },
    },
    quota,
    rate: senderRateLimiter(1_000_000),
    now: () => now,
    scanUsage,
    emit: () => undefined,
    warn: () => undefined,
  };
  return { intake: new FrameIntake(deps), calls, seen, quota, saves: () => saves };
}

const text = (s: string): FrameInput => ({ ok: true, value: { type: DataType.Text, payload: Buffer.from(s) } });
const key = (k: string): FrameInput => ({ ok: true, value: { type: IDEMPOTENCY_KEY_TYPE, payload: Buffer.from(k) } });
const file = (name: string, data: Buffer): FrameInput => ({
  ok: true,
  value: { type: DataType.File, payload: encodeFilePayload({ name, data }) },
});
const keyAck = ackText(IDEMPOTENCY_KEY_TYPE, 3);
const stored = (size: number): StoredItem => ({ name: 'n', path: '/p', size });

function connect(
  intake: FrameIntake,
  from = 'peer',
): { conn: FakeConn<FrameInput>; pipeline: OrderedReplies<FrameInput> } {
  const conn = new FakeConn<FrameInput>(intake.connection(from));
  return { conn, pipeline: new OrderedReplies(conn, { maxInFlight: 16, maxInFlightBytes: 1 << 20 }) };
}

describe('data exchange intake', () => {
  it('stores frames concurrently and replies in frame order', async () => {
    const { intake, calls } = fakeIntake();
    const { conn, pipeline } = connect(intake);
    pipeline.push([text('a'), text('bb'), text('ccc')]);
    await settle();
    assert.equal(calls.length, 3, 'all three stores run at once');
    calls[2]?.done.resolve(stored(10));
    calls[1]?.done.resolve(stored(10));
    await settle();
    assert.deepEqual(conn.sent, []);
    calls[0]?.done.resolve(stored(10));
    await settle();
    assert.deepEqual(conn.sent, ['ACK TEXT 1 bytes', 'ACK TEXT 2 bytes', 'ACK TEXT 3 bytes']);
    assert.equal(intake.messages, 3);
  });

  it('stores a key only once when the duplicate arrives while the original is in flight', async () => {
    const { intake, calls, saves } = fakeIntake();
    const one = connect(intake);
    const two = connect(intake);
    one.pipeline.push([key('k-1'), text('once'), key('k-1'), text('once')]);
    two.pipeline.push([key('k-1'), text('once')]);
    await settle();
    assert.equal(calls.length, 1, 'the duplicates do not start a store');
    calls[0]?.done.resolve(stored(50));
    await settle();
    assert.deepEqual(one.conn.sent, [keyAck, 'ACK TEXT 4 bytes', keyAck, 'ACK TEXT 4 bytes']);
    assert.deepEqual(two.conn.sent, [keyAck, 'ACK TEXT 4 bytes']);
    assert.equal(intake.duplicates, 2);
    assert.equal(saves(), 1);
    // Later copies are answered from the saved keys.
    one.pipeline.push([key('k-1'), text('once')]);
    await settle();
    assert.equal(calls.length, 1);
    assert.equal(one.conn.sent.at(-1), 'ACK TEXT 4 bytes');
  });

  it('answers an in-flight duplicate with ERR when the original could not be stored', async () => {
    const { intake, calls } = fakeIntake();
    const { conn, pipeline } = connect(intake);
    pipeline.push([key('k-2'), text('x'), key('k-2'), text('x')]);
    await settle();
    assert.equal(calls.length, 1);
    calls[0]?.done.reject(new Error('disk full'));
    await settle();
    assert.match(conn.sent[1] ?? '', /^ERR TEXT save failed: disk full/);
    assert.match(conn.sent[3] ?? '', /^ERR TEXT save failed: /);
    // Nothing was stored, so a retry stores it.
    pipeline.push([key('k-2'), text('x')]);
    await settle();
    assert.equal(calls.length, 2);
  });

  it('applies a key to the next data frame only', async () => {
    const { intake, calls, seen } = fakeIntake();
    const { pipeline } = connect(intake);
    pipeline.push([key('k-3'), text('first'), text('second')]);
    await settle();
    for (const c of calls) c.done.resolve(stored(10));
    await settle();
    assert.equal(calls.length, 2);
    assert.deepEqual([...seen], ['peer/k-3']);
  });

  it('reserves quota for stores in flight and releases it when a store fails', async () => {
    const { intake, calls, quota } = fakeIntake({ quotaBytes: 100 });
    const { conn, pipeline } = connect(intake);
    const chunk = Buffer.alloc(60, 1);
    pipeline.push([file('a', chunk), file('b', chunk)]);
    await settle();
    assert.equal(calls.length, 1, 'the second file would exceed the quota together with the first');
    assert.deepEqual(conn.sent, []);
    assert.equal(quota.used('peer'), 60);
    calls[0]?.done.reject(new Error('EIO'));
    await settle();
    assert.match(conn.sent[0] ?? '', /^ERR FILE save failed: EIO/);
    assert.match(conn.sent[1] ?? '', /^ERR FILE quota exceeded: /);
    assert.equal(quota.used('peer'), 0, 'the failed store released its reservation');
    pipeline.push([file('c', chunk)]);
    await settle();
    assert.equal(calls.length, 2);
    calls[1]?.done.resolve(stored(60));
    await settle();
    assert.equal(conn.sent[2], 'ACK FILE 60 bytes');
    assert.equal(quota.used('peer'), 60);
    assert.equal(quota.totalBytes, 60);
  });

  it('recounts the disk only once no store holds a reservation', async () => {
    let scans = 0;
    const scanUsage = async (): Promise<Map<string, number>> => {
      scans++;
      return new Map();
    };
    const { intake, calls, quota } = fakeIntake({ quotaBytes: 100, now: 60_000, scanUsage });
    const { conn, pipeline } = connect(intake);
    const chunk = Buffer.alloc(60, 1);
    pipeline.push([file('a', chunk), file('b', chunk)]);
    await settle();
    assert.equal(scans, 0, 'the recount waits for the store in flight');
    calls[0]?.done.resolve(stored(60));
    await settle();
    assert.equal(scans, 1);
    // The (fake) disk is empty after the recount, so the second file fits.
    assert.equal(calls.length, 2);
    calls[1]?.done.resolve(stored(60));
    await settle();
    assert.deepEqual(conn.sent, ['ACK FILE 60 bytes', 'ACK FILE 60 bytes']);
    assert.equal(quota.used('peer'), 60);
  });

  it('answers a malformed frame after the replies before it and closes', async () => {
    const { intake, calls } = fakeIntake();
    const { conn, pipeline } = connect(intake);
    pipeline.push([text('ok'), fail('bad_value', 'broken header')]);
    await settle();
    assert.deepEqual(conn.sent, []);
    calls[0]?.done.resolve(stored(10));
    await settle();
    assert.deepEqual(conn.sent, ['ACK TEXT 2 bytes', 'ERR frame malformed: broken header']);
    assert.equal(conn.endedWith, 'ERR frame malformed: broken header');
    assert.equal(intake.refused.malformed, 1);
  });
});

describe('coalesced writes', () => {
  it('never overlaps executions and serves each request by one that starts after it', async () => {
    let running = 0;
    let maxRunning = 0;
    const started: number[] = [];
    let version = 0;
    const gates: Deferred<void>[] = [];
    const c = new Coalescer(async () => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      started.push(version);
      const gate = deferred<void>();
      gates.push(gate);
      await gate.promise;
      running--;
    });
    version = 1;
    const first = c.request();
    await settle();
    version = 2;
    const second = c.request();
    version = 3;
    const third = c.request();
    assert.equal(second, third, 'requests made while one runs share the next execution');
    gates[0]?.resolve();
    await first;
    await settle();
    gates[1]?.resolve();
    await third;
    assert.deepEqual(started, [1, 3]);
    assert.equal(maxRunning, 1);
  });

  it('shares a directory fsync only with links made before it started', async () => {
    const syncs: string[] = [];
    const gate = deferred<void>();
    const group = new DirSyncGroup(async (dir) => {
      syncs.push(dir);
      if (syncs.length === 1) await gate.promise;
    });
    const a = group.sync('/d');
    await settle();
    const b = group.sync('/d');
    const c = group.sync('/d');
    await settle();
    assert.deepEqual(syncs, ['/d'], 'b and c wait for an fsync that starts after them');
    gate.resolve();
    await Promise.all([a, b, c]);
    assert.deepEqual(syncs, ['/d', '/d']);
  });

  it('lets writeFileAtomic use the group commit', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pilot-dirsync-'));
    const synced: string[] = [];
    await writeFileAtomic(join(dir, 'x'), 'hello', { exclusive: true, syncDir: async (d) => void synced.push(d) });
    assert.deepEqual(synced, [dir]);
    assert.equal(await readFile(join(dir, 'x'), 'utf8'), 'hello');
  });

  it('keeps the newest state when saves are requested concurrently', async () => {
    const home = await mkdtemp(join(tmpdir(), 'pilot-state-save-'));
    const state = await ServiceState.open(home);
    const saves: Promise<void>[] = [];
    for (let i = 0; i < 20; i++) {
      state.markSeen('0:0000.0000.0001', `k${i}`);
      saves.push(state.save());
    }
    await Promise.all(saves);
    const again = await ServiceState.open(home);
    for (let i = 0; i < 20; i++) assert.ok(again.hasSeen('0:0000.0000.0001', `k${i}`), `k${i}`);
  });
});
