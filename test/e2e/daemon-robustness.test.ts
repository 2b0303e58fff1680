import assert from 'node:assert/strict';
import { createConnection, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { decodeIpcMessage, encodeIpcFrame, IpcFrameSplitter, type IpcMessage } from '../../src/protocol/ipc.js';
import { Driver } from '../../src/sdk/driver.js';
import { Cluster, stopProcess, type DaemonHandle } from './cluster.js';

/** A raw IPC client that records every message the daemon sends. */
class RawClient {
  readonly received: IpcMessage[] = [];
  private readonly splitter = new IpcFrameSplitter();
  closed = false;

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      for (const f of this.splitter.push(chunk)) {
        if (!f.ok) continue;
        const m = decodeIpcMessage(f.value);
        if (m.ok) this.received.push(m.value);
      }
    });
    socket.on('close', () => (this.closed = true));
    socket.on('error', () => undefined);
  }

  static connect(path: string): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = createConnection(path, () => resolve(new RawClient(s)));
      s.once('error', reject);
    });
  }

  async waitFor(pred: (m: IpcMessage) => boolean, timeoutMs = 3000): Promise<IpcMessage> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.received.find(pred);
      if (m) return m;
      if (Date.now() > deadline)
        throw new Error(`no matching IPC message; got ${JSON.stringify(this.received.map((x) => x.cmd))}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

describe('daemon and registry under bad input and crashes', () => {
  let cluster: Cluster;
  let a: DaemonHandle;

  before(async () => {
    cluster = await Cluster.start();
    a = await cluster.addDaemon('a');
  });
  after(async () => cluster?.stop());

  it('answers malformed IPC commands with errors and keeps serving', async () => {
    const c = await RawClient.connect(a.socket);
    // Unknown command byte, a truncated Dial, a Send to a connection that does not exist.
    c.socket.write(Buffer.from([0, 0, 0, 1, 0x7f]));
    c.socket.write(Buffer.from([0, 0, 0, 3, 0x03, 0, 0]));
    c.socket.write(encodeIpcFrame({ cmd: 'Send', connId: 4242, data: Buffer.from('x') }));
    c.socket.write(encodeIpcFrame({ cmd: 'Info' }));
    const info = await c.waitFor((m) => m.cmd === 'InfoOK');
    assert.ok('json' in info && info.json.node_id === a.nodeId);
    const errors = c.received.filter((m) => m.cmd === 'Error');
    assert.ok(errors.length >= 3, `expected 3 errors, got ${errors.length}`);
    c.socket.destroy();
  });

  it('drops a client announcing an oversize frame, without harm to others', async () => {
    const bad = await RawClient.connect(a.socket);
    bad.socket.write(Buffer.from([0x7f, 0xff, 0xff, 0xff, 0x01]));
    const deadline = Date.now() + 3000;
    while (!bad.closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.equal(bad.closed, true);
    const good = await Driver.connect(a.socket);
    assert.equal((await good.info()).node_id, a.nodeId);
    await good.close();
  });

  it('keeps every node after the registry is killed with SIGKILL and restarted', async () => {
    const b = await cluster.addDaemon('b');
    const idBefore = b.nodeId;
    await stopProcess(cluster.rendezvous.child, 'SIGKILL');
    await cluster.startRendezvous();
    // The daemons keep their ids; a restarted daemon registers again with the same key.
    await cluster.restartDaemon(b);
    const da = await Driver.connect(a.socket);
    const found = await da.resolveHostname('nobody-has-this-name').catch((e: Error & { code?: string }) => e.code);
    assert.equal(typeof found, 'string');
    await da.close();
    const db = await Driver.connect(b.socket);
    assert.equal(b.nodeId, idBefore);
    assert.equal((await db.info()).node_id, idBefore);
    await db.close();
  });
});
