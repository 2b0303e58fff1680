import assert from 'node:assert/strict';
import { mkdir, readdir, stat, utimes, writeFile } from 'node:fs/promises';
import { createConnection, type Socket } from 'node:net';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { parseAddr, type Addr } from '../../src/protocol/address.js';
import { EventDecoder, encodeEvent, type StreamEvent } from '../../src/protocol/eventstream.js';
import { decodeIpcMessage, encodeIpcFrame, IpcFrameSplitter, type IpcMessage } from '../../src/protocol/ipc.js';
import { encodeJson, isJsonObject, parseJsonObject, type JsonObject } from '../../src/protocol/json.js';
import { MAX_DATAGRAM_PAYLOAD } from '../../src/protocol/tunnel.js';
import { encodeTypedFrame, TypedFrameDecoder, type TypedFrame } from '../../src/protocol/typed-frame.js';
import { Driver } from '../../src/sdk/driver.js';
import { Cluster, stopProcess, type DaemonHandle } from './cluster.js';
import { makeTrust } from './eventstream-helpers.js';
import { until } from '../wait.js';

/**
 * Hostile clients against real daemons on 127.0.0.1: raw IPC frames on the daemon's socket, raw
 * service frames over a real pilot connection. Each case is an attack the daemon once answered
 * with an exception, a silent close, or not at all.
 */

/** A raw IPC client that records every message the daemon sends it. */
class RawIpc {
  readonly received: IpcMessage[] = [];
  readonly #splitter = new IpcFrameSplitter();

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      for (const f of this.#splitter.push(chunk)) {
        if (!f.ok) continue;
        const m = decodeIpcMessage(f.value);
        if (m.ok) this.received.push(m.value);
      }
    });
    socket.on('error', () => undefined);
  }

  static connect(path: string): Promise<RawIpc> {
    return new Promise((resolve, reject) => {
      const s = createConnection(path, () => resolve(new RawIpc(s)));
      s.once('error', reject);
    });
  }

  send(msg: IpcMessage): void {
    this.socket.write(encodeIpcFrame(msg));
  }

  async waitFor<M extends IpcMessage>(pred: (m: IpcMessage) => m is M, what: string, timeoutMs = 5000): Promise<M> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.received.find(pred);
      if (m) return m;
      if (Date.now() > deadline) throw new Error(`no ${what}; got ${JSON.stringify(this.received.map((x) => x.cmd))}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  close(): void {
    this.socket.destroy();
  }
}

const isError = (m: IpcMessage): m is Extract<IpcMessage, { cmd: 'Error' }> => m.cmd === 'Error';
const isRecvFrom = (m: IpcMessage): m is Extract<IpcMessage, { cmd: 'RecvFrom' }> => m.cmd === 'RecvFrom';

const isInfo = (m: IpcMessage): m is Extract<IpcMessage, { json: JsonObject }> => m.cmd === 'InfoOK';

/** The daemon's whole Info JSON (the SDK's typed info() keeps only the reference's fields). */
async function rawInfo(d: DaemonHandle): Promise<JsonObject> {
  const c = await RawIpc.connect(d.socket);
  try {
    c.send({ cmd: 'Info' });
    return (await c.waitFor(isInfo, 'InfoOK')).json;
  } finally {
    c.close();
  }
}

function addrOf(d: DaemonHandle): Addr {
  const a = parseAddr(d.address);
  if (!a.ok) throw new Error(`bad address ${d.address}`);
  return a.value;
}

/**
 * A connection from a's daemon to b's `port` on a driver of its own: the errors the daemon sends
 * about a connection the attacker abandons must not reach anyone else's requests.
 */
async function hostile(
  from: DaemonHandle,
  to: DaemonHandle,
  port: number,
): Promise<{ conn: Duplex; done: () => Promise<void> }> {
  const driver = await Driver.connect(from.socket);
  const conn = await driver.dial(to.address, port);
  return {
    conn,
    done: async () => {
      conn.destroy();
      await driver.close();
    },
  };
}

/** Everything a connection delivers until the other side ends it (or the timeout). */
function readToEnd(conn: Duplex, timeoutMs = 15_000): Promise<{ bytes: Buffer; ended: boolean }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (ended: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({ bytes: Buffer.concat(chunks), ended });
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    conn.on('data', (c: Buffer) => chunks.push(c));
    conn.once('end', () => finish(true));
    conn.once('close', () => finish(true));
    conn.on('error', () => finish(true));
  });
}

function typedFrames(bytes: Uint8Array): TypedFrame[] {
  const out: TypedFrame[] = [];
  for (const r of new TypedFrameDecoder().push(bytes)) if (r.ok) out.push(r.value);
  return out;
}

function events(bytes: Uint8Array): StreamEvent[] {
  const out: StreamEvent[] = [];
  for (const r of new EventDecoder().push(bytes)) if (r.ok) out.push(r.value);
  return out;
}

function json(frame: TypedFrame | undefined): JsonObject {
  assert.ok(frame, 'expected a reply frame before the close');
  const o = parseJsonObject(frame.payload);
  assert.ok(o.ok, 'reply is JSON');
  return o.value;
}

const VALID_ID = '0123abcd-0123-4567-89ab-0123456789ab';

describe('attacks on a daemon: every refusal says why, nothing throws', () => {
  let cluster: Cluster;
  let a: DaemonHandle; // the attacker's daemon
  let b: DaemonHandle; // the victim
  let da: Driver;
  let db: Driver;

  before(async () => {
    cluster = await Cluster.start();
    [a, b] = await Promise.all([cluster.addDaemon('a'), cluster.addDaemon('b')]);
    [da, db] = await Promise.all([Driver.connect(a.socket), Driver.connect(b.socket)]);
    await makeTrust(da, db, a, b);
  });

  after(async () => {
    await Promise.all([da?.close(), db?.close()]);
    await cluster?.stop();
  });

  it('IPC SendTo of 65,502–65,535 bytes to a batching peer: an IPC error naming the limit, no exception; the limit itself arrives', async () => {
    // Traffic both ways makes the two daemons exchange capabilities: a then batches to b (PILM).
    await until('a sends PILM frames to b', async () => {
      const conn = await da.dial(b.address, 7);
      conn.end(Buffer.from('caps'));
      await readToEnd(conn, 2000);
      const sent = (await rawInfo(a)).frames_sent;
      return isJsonObject(sent) && typeof sent.PILM === 'number' && sent.PILM > 0 ? true : undefined;
    });
    const victim = await RawIpc.connect(b.socket);
    const attacker = await RawIpc.connect(a.socket);
    try {
      for (const size of [65_502, 65_535]) {
        attacker.send({ cmd: 'SendTo', addr: addrOf(b), port: 5000, data: Buffer.alloc(size, 0x41) });
        const err = await attacker.waitFor(isError, `IPC error for a ${size}-byte datagram`).catch((e: Error) => {
          throw new Error(`${e.message}; daemon stderr: ${a.proc.stderr.slice(-3).join(' | ').slice(0, 400)}`);
        });
        assert.match(err.message, new RegExp(`${size}.*${MAX_DATAGRAM_PAYLOAD}`));
        attacker.received.length = 0;
      }
      // The largest datagram allowed crosses end to end, as one datagram.
      attacker.send({ cmd: 'SendTo', addr: addrOf(b), port: 5001, data: Buffer.alloc(MAX_DATAGRAM_PAYLOAD, 0x42) });
      const got = await victim.waitFor(isRecvFrom, 'the datagram at the limit');
      assert.equal(got.data.length, MAX_DATAGRAM_PAYLOAD);
      assert.equal(got.dstPort, 5001);
      assert.equal(attacker.received.filter(isError).length, 0);
      assert.equal((await da.info()).node_id, a.nodeId);
      assert.ok(!a.proc.stderr.some((l) => /unexpected error|RangeError/.test(l)), a.proc.stderr.join('\n'));
    } finally {
      attacker.close();
      victim.close();
    }
  });

  it('task submit (1003): invalid task ids get a status-400 reply saying why, in the frame the request expects', async () => {
    const ids = ['../x', '../../../etc/passwd', '/etc/passwd', 'abc\u0000def', 'f'.repeat(100_000)];
    for (const [type, body] of [
      [1, (id: string) => ({ task_id: id, task_description: 'x', from_addr: a.address, to_addr: b.address })],
      [3, (id: string) => ({ task_id: id, status: 'ACCEPTED', justification: '' })],
      [
        4,
        (id: string) => ({
          task_id: id,
          result_type: 'text',
          result_text: 'x',
          completed_at: new Date().toISOString(),
        }),
      ],
    ] as const) {
      for (const id of ids) {
        const { conn, done } = await hostile(a, b, 1003);
        const reply = readToEnd(conn);
        conn.write(encodeTypedFrame({ type, payload: encodeJson(body(id)) }));
        const { bytes, ended } = await reply;
        const frames = typedFrames(bytes);
        assert.equal(ended, true);
        assert.equal(frames.length, 1, `type ${type}, id ${JSON.stringify(id.slice(0, 20))}: one reply frame`);
        // SUBMIT is answered with a SUBMIT response (what the reference's CLI reads), the others with an ACK.
        assert.equal(frames[0]?.type, type === 1 ? 1 : 5);
        const o = json(frames[0]);
        assert.equal(o.status, 400);
        assert.equal(o.task_id, '');
        assert.match(String(o.message), /task id/);
        await done();
      }
    }
    assert.deepEqual(await readdir(join(b.home, 'tasks', 'received')), []);
  });

  it('task submit (1003): a 13 MiB result frame is answered with the frame limit before the close', async () => {
    const data = Buffer.alloc(13 * 1024 * 1024, 0x61).toString('base64');
    const payload = encodeJson({
      task_id: VALID_ID,
      result_type: 'file',
      filename: 'big.bin',
      file_data: data,
      completed_at: new Date().toISOString(),
    });
    const { conn, done } = await hostile(a, b, 1003);
    const reply = readToEnd(conn, 30_000);
    // Header and payload as two writes, as the reference does; the payload is not awaited.
    conn.write(Buffer.concat([u32(4), u32(payload.length)]));
    conn.write(payload);
    const { bytes } = await reply;
    const frames = typedFrames(bytes);
    assert.equal(frames.length, 1);
    assert.equal(frames[0]?.type, 5);
    const o = json(frames[0]);
    assert.equal(o.status, 400);
    assert.match(String(o.message), /16777216/);
    await done();
  });

  it('event stream (1002): a connection over its subscription limit, or announcing an oversize event, is told why before the close', async () => {
    const { conn, done } = await hostile(a, b, 1002);
    const reply = readToEnd(conn);
    const frames: Uint8Array[] = [];
    for (let i = 0; i <= 64; i++) frames.push(encodeEvent({ topic: `t${i}`, payload: new Uint8Array(0) }));
    conn.write(Buffer.concat(frames));
    const got = events((await reply).bytes);
    assert.equal(got.length, 1);
    assert.equal(got[0]?.topic, '_pilot.error');
    assert.match(Buffer.from(got[0]?.payload ?? []).toString(), /more than 64 subscriptions/);
    await done();

    const { conn: conn2, done: done2 } = await hostile(a, b, 1002);
    const reply2 = readToEnd(conn2);
    const header = Buffer.alloc(7);
    header.writeUInt16BE(1, 0);
    header[2] = 0x78;
    header.writeUInt32BE(16_777_217, 3);
    conn2.write(Buffer.concat([encodeEvent({ topic: 'x', payload: new Uint8Array(0) }), header]));
    const got2 = events((await reply2).bytes);
    assert.equal(got2.length, 1);
    assert.equal(got2[0]?.topic, '_pilot.error');
    assert.match(Buffer.from(got2[0]?.payload ?? []).toString(), /16777216/);
    await done2();
  });

  it('temporary files a crash left behind are removed at start-up; complete files stay', async () => {
    const c = await cluster.addDaemon('c');
    await stopProcess(c.proc.child, 'SIGKILL');
    const h = c.home;
    const old = new Date(Date.now() - 3_600_000);
    const outboxId = '3f1c2b7e-8d4a-4c59-9e21-0a6b5c4d3e2f';
    const orphanId = '9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d';
    const files: Record<string, { content: string; gone: boolean; old?: boolean }> = {
      'inbox/TEXT-20250101-101010.123-000001.json': { content: '{"type":"TEXT"}', gone: false },
      'inbox/.TEXT-20250101-101010.124-000002.json.0123456789ab.tmp': { content: '{"ty', gone: true },
      'received/report-20250101-101010.125-000003.pdf': { content: 'pdf', gone: false },
      'received/empty-20250101-101010.126-000004.txt': { content: '', gone: false },
      'received/.photo-20250101-101010.127-000005.png.abcdef012345.tmp': { content: '', gone: true },
      'received/notes.tmp': { content: 'not ours', gone: false },
      'dataexchange/.state.json.a1b2c3d4e5f6.tmp': { content: '{', gone: true },
      [`tasks/received/${VALID_ID}.json`]: { content: '{}', gone: false },
      [`tasks/received/.${VALID_ID}.json.00112233aabb.tmp`]: { content: '', gone: true },
      [`tasks/submitted/.${VALID_ID}.json.00112233aabc.tmp`]: { content: '{"task', gone: true },
      [`tasks/results/.${VALID_ID}_result.txt.00112233aabd.tmp`]: { content: 'half', gone: true },
      [`tasks/.evidence/.${VALID_ID}.json.00112233aabe.tmp`]: { content: '', gone: true },
      [`outbox/${outboxId}.data`]: { content: 'queued', gone: false },
      [`outbox/${outboxId}.json`]: {
        content: JSON.stringify({
          id: outboxId,
          target: b.address,
          type: 1,
          bytes: 6,
          created_at: Date.now(),
          expires_at: Date.now() + 86_400_000,
          attempts: 0,
          next_attempt_at: Date.now() + 86_400_000,
        }),
        gone: false,
      },
      // An enqueue that died between its two writes (data written, metadata never), long ago.
      [`outbox/${orphanId}.data`]: { content: 'orphan', gone: true, old: true },
      [`outbox/.${orphanId}.json.ffeeddccbbaa.tmp`]: { content: '{"id', gone: true, old: true },
      // A temp file a pilotctl enqueue may be writing right now stays.
      [`outbox/.${orphanId}.data.0a0b0c0d0e0f.tmp`]: { content: 'in progress', gone: false },
      [`outbox/failed/.${orphanId}.json.f0e0d0c0b0a0.tmp`]: { content: '', gone: true, old: true },
    };
    for (const [rel, f] of Object.entries(files)) {
      const path = join(h, rel);
      await mkdir(join(path, '..'), { recursive: true, mode: 0o700 });
      await writeFile(path, f.content, { mode: 0o600 });
      if (f.old === true) await utimes(path, old, old);
    }
    await cluster.restartDaemon(c);
    const present = async (rel: string): Promise<boolean> =>
      stat(join(h, rel)).then(
        () => true,
        () => false,
      );
    for (const [rel, f] of Object.entries(files))
      assert.equal(await present(rel), !f.gone, `${rel} should ${f.gone ? 'be removed' : 'stay'}`);
  });
});

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n, 0);
  return b;
}
