import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { encodeTypedFrameHeader } from '../../src/protocol/typed-frame.js';
import { sendFile, sendMessage } from '../../src/sdk/dataexchange.js';
import { Driver } from '../../src/sdk/driver.js';
import { DATA_EXCHANGE_PORT } from '../../src/protocol/dataexchange.js';
import { FrameChannel } from '../../src/services/dataexchange/frame-channel.js';
import { ctl, okData, errorEnvelope, type AgentEnv } from './cli-harness.js';
import { until } from '../wait.js';
import { Cluster, stopProcess, type DaemonHandle } from './cluster.js';

const MAX_FILE = 16 * 1024 * 1024 - 2 - 'big.bin'.length;

async function makeTrust(da: Driver, db: Driver, a: DaemonHandle, b: DaemonHandle): Promise<void> {
  await da.handshake(b.nodeId, 'e2e data exchange');
  await until('pending request', async () =>
    (await db.pending()).some((p) => p.node_id === a.nodeId) ? true : undefined,
  );
  await db.approve(a.nodeId);
  await until('mutual trust', async () =>
    (await da.trusted()).some((t) => t.node_id === b.nodeId) ? true : undefined,
  );
}

function agent(d: DaemonHandle): AgentEnv {
  return { name: d.name, home: d.home, socket: d.socket, env: { PILOT_HOME: d.home, PILOT_SOCKET: d.socket } };
}

async function inboxOf(d: DaemonHandle): Promise<Record<string, unknown>[]> {
  return okData(await ctl(agent(d), ['inbox', '--json'])).messages as Record<string, unknown>[];
}

describe('data exchange (port 1001) between real daemons', () => {
  let cluster: Cluster;
  let a: DaemonHandle;
  let b: DaemonHandle;
  let q: DaemonHandle;
  let da: Driver;
  let db: Driver;
  let dq: Driver;
  let work: string;

  before(async () => {
    cluster = await Cluster.start();
    work = await mkdtemp(join(tmpdir(), 'pilot-dx-'));
    [a, b] = await Promise.all([cluster.addDaemon('a'), cluster.addDaemon('b')]);
    process.env.PILOT_DX_QUOTA_BYTES = '100000';
    q = await cluster.addDaemon('q');
    delete process.env.PILOT_DX_QUOTA_BYTES;
    [da, db, dq] = await Promise.all([Driver.connect(a.socket), Driver.connect(b.socket), Driver.connect(q.socket)]);
    await makeTrust(da, db, a, b);
    await makeTrust(da, dq, a, q);
  });

  after(async () => {
    await Promise.all([da?.close(), db?.close(), dq?.close()]);
    await cluster?.stop();
  });

  it('delivers text, json and binary messages with the authenticated sender', async () => {
    const text = okData(await ctl(agent(a), ['send-message', b.address, '--data', 'hello', '--json']));
    assert.equal(text.ack, 'ACK TEXT 5 bytes');
    const json = okData(
      await ctl(agent(a), ['send-message', String(b.nodeId), '--data', '{"k":1}', '--type', 'json', '--json']),
    );
    assert.equal(json.ack, 'ACK JSON 7 bytes');
    const bin = okData(
      await ctl(agent(a), [
        'send-message',
        b.address,
        '--data',
        Buffer.from([0, 255, 1]).toString('base64'),
        '--type',
        'binary',
        '--json',
      ]),
    );
    assert.equal(bin.ack, 'ACK BINARY 3 bytes');
    const bad = errorEnvelope(
      await ctl(agent(a), ['send-message', b.address, '--data', '{oops', '--type', 'json', '--json']),
    );
    assert.equal(bad.code, 'invalid_argument');
    const msgs = await inboxOf(b);
    assert.equal(msgs.length, 3);
    for (const m of msgs) assert.equal(m.from, a.address);
    assert.deepEqual(msgs.map((m) => m.type).sort(), ['BINARY', 'JSON', 'TEXT']);
    assert.equal(msgs.find((m) => m.type === 'TEXT')?.data, 'hello');
    assert.equal(msgs.find((m) => m.type === 'BINARY')?.data, Buffer.from([0, 255, 1]).toString('base64'));
    const st = await readdir(join(b.home, 'inbox'));
    assert.equal(st.length, 3);
    okData(await ctl(agent(b), ['inbox', '--clear', '--json']));
  });

  it('stores 64 messages sent without waiting and acknowledges them in frame order', async () => {
    const count = 64;
    const bodies = Array.from({ length: count }, (_, i) => `pipelined-${String(i).padStart(2, '0')}-${'x'.repeat(i)}`);
    const channel = new FrameChannel(await da.dial(b.address, DATA_EXCHANGE_PORT));
    for (const body of bodies) await channel.sendFrame(1, Buffer.from(body));
    const replies: string[] = [];
    for (let i = 0; i < count; i++) replies.push(await channel.reply());
    channel.close();
    // Every body has its own length, so the replies' order shows in their byte counts.
    assert.deepEqual(
      replies,
      bodies.map((body) => `ACK TEXT ${Buffer.byteLength(body)} bytes`),
    );
    const names = (await readdir(join(b.home, 'inbox'))).filter((n) => !n.startsWith('.'));
    assert.equal(names.length, count);
    assert.equal(new Set(names).size, count);
    const stored: string[] = [];
    for (const name of names) {
      const m = JSON.parse(await readFile(join(b.home, 'inbox', name), 'utf8')) as {
        data: string;
        from: string;
        type: string;
        bytes: number;
      };
      assert.equal(m.from, a.address);
      assert.equal(m.type, 'TEXT');
      assert.equal(m.bytes, Buffer.byteLength(m.data));
      stored.push(m.data);
    }
    assert.deepEqual(stored.sort(), [...bodies].sort());
    okData(await ctl(agent(b), ['inbox', '--clear', '--json']));
  });

  it('stores a pipelined duplicate key once and answers earlier frames before refusing a bad one', async () => {
    const channel = new FrameChannel(await da.dial(b.address, DATA_EXCHANGE_PORT));
    const key = '99999999-8888-7777-6666-555555555555';
    for (let i = 0; i < 3; i++) {
      await channel.sendKey(key);
      await channel.sendFrame(1, Buffer.from('pipelined-once'));
    }
    for (let i = 0; i < 8; i++) await channel.sendFrame(1, Buffer.from(`before-bad-${i}`));
    await channel.write(Buffer.from([0, 0, 0, 1, 0x01, 0x00, 0x00, 0x01]));
    for (let i = 0; i < 3; i++) {
      assert.match(await channel.reply(5000), /^ACK UNKNOWN\(\d+\) 36 bytes$/);
      assert.equal(await channel.reply(5000), 'ACK TEXT 14 bytes');
    }
    for (let i = 0; i < 8; i++) assert.equal(await channel.reply(5000), `ACK TEXT ${`before-bad-${i}`.length} bytes`);
    assert.match(await channel.reply(5000), /^ERR frame too large: /);
    channel.close();
    const msgs = await inboxOf(b);
    assert.equal(msgs.filter((m) => m.data === 'pipelined-once').length, 1);
    assert.equal(msgs.filter((m) => String(m.data).startsWith('before-bad-')).length, 8);
    okData(await ctl(agent(b), ['inbox', '--clear', '--json']));
  });

  it('streams files of 0 B, 1 MiB and the 16 MiB frame maximum byte-exact', async () => {
    const sizes: [string, number][] = [
      ['empty.txt', 0],
      ['one.bin', 1024 * 1024],
      ['big.bin', MAX_FILE],
    ];
    for (const [name, size] of sizes) {
      const data = Buffer.alloc(size);
      for (let i = 0; i < size; i += 4096) data[i] = (i / 4096) & 0xff;
      const path = join(work, name);
      await writeFile(path, data);
      const started = performance.now();
      const r = okData(await ctl(agent(a), ['send-file', b.address, path, '--json'], { timeoutMs: 60_000 }));
      const ms = performance.now() - started;
      assert.equal(r.ack, `ACK FILE ${size} bytes`);
      assert.equal(r.filename, name);
      if (size === MAX_FILE) console.log(`# 16 MiB send-file took ${ms.toFixed(0)} ms (process start included)`);
      const files = okData(await ctl(agent(b), ['received', '--json'])).files as {
        name: string;
        path: string;
        bytes: number;
        from?: string;
      }[];
      const got = files.find((f) => f.name.startsWith(name.split('.')[0] as string));
      assert.ok(got, `no ${name} in received/`);
      assert.equal(got.bytes, size);
      assert.equal(got.from, a.address, 'the sender of each file is recorded and listed');
      assert.ok((await readFile(got.path)).equals(data));
    }
  });

  it('refuses a file over the frame limit in the CLI and an oversized frame on the wire', async () => {
    const path = join(work, 'huge.bin');
    await writeFile(path, Buffer.alloc(16 * 1024 * 1024));
    const err = errorEnvelope(await ctl(agent(a), ['send-file', b.address, path, '--json']));
    assert.equal(err.code, 'too_large');
    const conn = await da.dial(b.address, DATA_EXCHANGE_PORT);
    const channel = new FrameChannel(conn);
    await channel.write(encodeTypedFrameHeader(1, 3));
    await channel.write(Buffer.from('abc'));
    // A header declaring 16 MiB + 1 is refused before any payload is buffered.
    await channel.write(Buffer.from([0, 0, 0, 1, 0x01, 0x00, 0x00, 0x01]));
    assert.equal(await channel.reply(5000), 'ACK TEXT 3 bytes');
    assert.match(await channel.reply(5000), /^ERR frame too large: /);
    channel.close();
  });

  it('keeps remote file names inside received/', async () => {
    const r = await sendFile(da, b.address, { name: '../../x', data: Buffer.from('trap') });
    assert.equal(r.ack, 'ACK FILE 4 bytes');
    const names = await readdir(join(b.home, 'received'));
    assert.ok(
      names.some((n) => /^x-\d{8}-\d{6}\.\d{3}-\d{6}$/.test(n)),
      names.join(','),
    );
    assert.ok(!(await readdir(cluster.dir)).includes('x'));
    const hidden = await sendFile(da, b.address, { name: '.bashrc', data: Buffer.from('h') });
    assert.ok(hidden.ack);
    assert.ok(!(await readdir(join(b.home, 'received'))).some((n) => n.startsWith('.bashrc')));
  });

  it('refuses a sender over its disk quota with a clear reply', async () => {
    const chunk = Buffer.alloc(40_000, 7);
    await sendFile(da, q.address, { name: 'q1', data: chunk });
    await sendFile(da, q.address, { name: 'q2', data: chunk });
    await assert.rejects(
      sendFile(da, q.address, { name: 'q3', data: chunk }),
      (e: Error & { code?: string }) => e.code === 'refused' && /quota exceeded/.test(e.message),
    );
    assert.equal((await readdir(join(q.home, 'received'))).length, 2);
  });

  it('never stores the same idempotency key twice', async () => {
    for (let i = 0; i < 2; i++) {
      const channel = new FrameChannel(await da.dial(b.address, DATA_EXCHANGE_PORT));
      await channel.sendKey('11111111-2222-3333-4444-555555555555');
      await channel.sendFrame(1, Buffer.from('once'));
      await channel.reply();
      assert.equal(await channel.reply(), 'ACK TEXT 4 bytes');
      channel.close();
    }
    assert.equal((await inboxOf(b)).filter((m) => m.data === 'once').length, 1);
  });

  it('acknowledges only what is on disk: kill -9 right after the ack loses nothing', async () => {
    const r = await sendMessage(da, b.address, 'durable');
    assert.equal(r.ack, 'ACK TEXT 7 bytes');
    await db.close();
    await cluster.restartDaemon(b, 'SIGKILL');
    db = await Driver.connect(b.socket);
    assert.equal((await inboxOf(b)).filter((m) => m.data === 'durable').length, 1);
  });

  it('delivers a queued message exactly once after the receiver comes back', async () => {
    await db.close();
    await stopProcess(b.proc.child);
    const r = okData(await ctl(agent(a), ['send-message', b.address, '--data', 'queued-hello', '--queue', '--json']));
    assert.equal(r.queued, true);
    const box = okData(await ctl(agent(a), ['outbox', '--json']));
    assert.equal(box.total, 1);
    await new Promise((res) => setTimeout(res, 2500));
    await cluster.restartDaemon(b);
    db = await Driver.connect(b.socket);
    await until(
      'queued message delivered',
      async () => ((await inboxOf(b)).some((m) => m.data === 'queued-hello') ? true : undefined),
      45_000,
      { everyMs: 250 },
    );
    await until(
      'outbox empty',
      async () => (okData(await ctl(agent(a), ['outbox', '--json'])).total === 0 ? true : undefined),
      10_000,
      { everyMs: 250 },
    );
    await new Promise((res) => setTimeout(res, 1500));
    assert.equal((await inboxOf(b)).filter((m) => m.data === 'queued-hello').length, 1);
  });
});
