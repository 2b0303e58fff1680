import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { IpcServer } from '../../src/daemon/ipc-server.js';
import type { IpcBackend } from '../../src/daemon/ipc-session.js';
import { NetStack, type ConnNotice } from '../../src/daemon/net-stack.js';
import { PilotError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { decodeIpcMessage, encodeIpcFrame, IpcFrameSplitter, type IpcMessage } from '../../src/protocol/ipc.js';
import { detachPayload, type Packet } from '../../src/protocol/packet.js';
import { MAX_DATAGRAM_PAYLOAD } from '../../src/protocol/tunnel.js';
import { Driver } from '../../src/sdk/driver.js';
import type { PilotConn } from '../../src/sdk/types.js';
import { startEcho } from '../../src/services/echo.js';
import { until } from '../wait.js';

const A = { network: 0, node: 10 };
const B = { network: 0, node: 11 };
/** Quick retransmissions, so that a dial retries several times within a test. */
const FAST = { initialRtoMs: 100, minRtoMs: 50 };

const delay = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const dir = mkdtempSync(join(tmpdir(), 'pilot-ipc-'));
let sockets = 0;
after(() => rmSync(dir, { recursive: true, force: true }));

/**
 * Two stacks on an in-memory wire. `hold()` stops B like a stopped process: packets to it wait
 * (as in its socket buffer) until `release()`.
 */
class Net {
  readonly a: NetStack;
  readonly b: NetStack;
  readonly bNotices: ConnNotice[] = [];
  private holding = false;
  private readonly held: Packet[] = [];

  constructor() {
    const stacks = new Map<number, NetStack>();
    const deliver = (p: Packet): void =>
      void setImmediate(() => stacks.get(p.dst.node)?.handlePacket(detachPayload(p)));
    const wire = (p: Packet): void => {
      if (this.holding && p.dst.node === B.node) this.held.push(p);
      else deliver(p);
    };
    this.a = new NetStack({ localAddr: A, transmit: wire, endpoint: { connection: FAST } });
    this.b = new NetStack({ localAddr: B, transmit: wire, endpoint: { connection: FAST } });
    stacks.set(A.node, this.a);
    stacks.set(B.node, this.b);
    this.b.onNotice((n) => this.bNotices.push(n));
    this.release = () => {
      this.holding = false;
      for (const p of this.held.splice(0)) deliver(p);
    };
  }

  hold(): void {
    this.holding = true;
  }

  readonly release: () => void;

  /** Connections of a stack in any state but TIME_WAIT (a closed connection lingering is not a leak). */
  static open(stack: NetStack): string[] {
    return stack.endpoint
      .connections()
      .filter((c) => c.state !== 'TIME_WAIT')
      .map((c) => `${c.id}:${c.state}`);
  }

  close(): void {
    this.a.close();
    this.b.close();
  }
}

function backend(stack: NetStack, extra: Partial<IpcBackend> = {}): IpcBackend {
  const none = (): Promise<never> => Promise.reject(new PilotError('unavailable', 'not in this test'));
  return {
    listen: (port) => stack.listen(port),
    dial: (addr, port, options) => stack.dial(addr, port, options),
    sendTo: (addr, port, data) => stack.sendTo(addr, port, data),
    dialRaw: (addr, port, options, events) => stack.dialRaw(addr, port, options, events),
    serveRaw: (port, accept) => stack.serveRaw(port, accept),
    disconnect: (id) => stack.disconnect(id),
    info: () => ({
      node_id: stack.localAddr.node,
      address: `0:0000.0000.${stack.localAddr.node.toString(16).padStart(4, '0')}`,
    }),
    handshake: none,
    resolveHostname: none,
    setHostname: none,
    setVisibility: none,
    deregister: none,
    setTags: none,
    setWebhook: none,
    setTaskExec: none,
    ...extra,
  };
}

function startServer(
  stack: NetStack,
  options: { releaseLingerMs?: number } = {},
  extra: Partial<IpcBackend> = {},
): Promise<IpcServer> {
  return IpcServer.start(join(dir, `d${++sockets}.sock`), backend(stack, extra), silentLogger(), options);
}

/** A raw IPC client that records every message the daemon sends. */
class RawClient {
  readonly received: IpcMessage[] = [];
  private readonly splitter = new IpcFrameSplitter();

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      for (const f of this.splitter.push(chunk)) {
        if (!f.ok) continue;
        const m = decodeIpcMessage(f.value);
        if (m.ok) this.received.push(m.value);
      }
    });
    socket.on('error', () => undefined);
  }

  static connect(path: string): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = createConnection(path, () => resolve(new RawClient(s)));
      s.once('error', reject);
    });
  }

  send(msg: IpcMessage): boolean {
    return this.socket.write(encodeIpcFrame(msg));
  }

  async waitFor<T extends IpcMessage['cmd']>(
    cmd: T,
    pred: (m: IpcMessage & { cmd: T }) => boolean = () => true,
    timeoutMs = 3000,
  ): Promise<IpcMessage & { cmd: T }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.received.find(
        (x): x is IpcMessage & { cmd: T } => x.cmd === cmd && pred(x as IpcMessage & { cmd: T }),
      );
      if (m) return m;
      if (Date.now() > deadline) throw new Error(`no ${cmd}; got ${JSON.stringify(this.received.map((x) => x.cmd))}`);
      await delay(5);
    }
  }
}

const tables = (n: Net): { a: string[]; b: string[] } => ({ a: Net.open(n.a), b: Net.open(n.b) });
const bothEmpty = (n: Net): boolean => Net.open(n.a).length === 0 && Net.open(n.b).length === 0;

describe('dials a client gave up on', () => {
  it('a dial whose client went away is abandoned: when the peer answers later, nothing stays open on either side', async () => {
    const n = new Net();
    await startEcho(n.b);
    const server = await startServer(n.a);
    try {
      n.hold();
      const c = await RawClient.connect(server.path);
      c.send({ cmd: 'Dial', addr: B, port: 7 });
      await delay(250); // the SYN and a retransmission wait at B
      c.socket.destroy();
      // The stack gives the dial up at once (no SYN retransmitted for nobody).
      await until('no dial under way in the stack', () => n.a.resources().dials === 0, 1000, {
        show: () => n.a.resources(),
      });
      n.release(); // B comes back and answers
      await until('both tables empty', () => bothEmpty(n), 2000, { show: () => tables(n) });
      // Still empty a while later (no late handshake re-opened anything).
      await delay(500);
      assert.deepEqual(tables(n), { a: [], b: [] });
      assert.ok(
        n.bNotices.filter((x) => x.kind === 'closed').every((x) => x.kind === 'closed' && x.reason === 'reset'),
        'B only saw resets',
      );
      await until(
        'IPC resources released',
        () => server.resources().dials === 0 && server.resources().conns === 0,
        1000,
        { show: () => server.resources() },
      );
    } finally {
      await server.close();
      n.close();
    }
  });

  it('an SDK dial aborted by its signal or timed out is cancelled: the next request is answered at once, a late handshake is reset', async () => {
    const n = new Net();
    await startEcho(n.b);
    const server = await startServer(n.a);
    const d = await Driver.connect(server.path);
    try {
      n.hold();
      const ac = new AbortController();
      const dialing = d.dial(B, 7, { signal: ac.signal });
      await delay(150);
      ac.abort();
      await assert.rejects(dialing, { name: 'AbortError' });
      await assert.rejects(d.dial(B, 7, { timeoutMs: 150 }), { code: 'timeout' });
      // The daemon does not keep working on dials nobody waits for: Info comes back at once.
      const started = Date.now();
      const info = await Promise.race([d.info(), delay(1500).then(() => undefined)]);
      assert.ok(info !== undefined, 'Info answered while the abandoned dials were still under way');
      assert.ok(Date.now() - started < 1000);
      await until('no dial under way', () => server.resources().dials === 0 && n.a.resources().dials === 0, 1000, {
        show: () => [server.resources(), n.a.resources()],
      });
      n.release();
      await until('both tables empty', () => bothEmpty(n), 2000, { show: () => tables(n) });
      await delay(300);
      assert.deepEqual(tables(n), { a: [], b: [] });
      assert.ok(
        n.bNotices.filter((x) => x.kind === 'closed').every((x) => x.kind === 'closed' && x.reason === 'reset'),
        'B only saw resets',
      );
      assert.equal(d.closed, false, 'the cancellation, not a disconnect, released them');
    } finally {
      await d.close();
      await server.close();
      n.close();
    }
  });

  it('DialCancel after the DialOK resets the connection', async () => {
    const n = new Net();
    await startEcho(n.b);
    const server = await startServer(n.a);
    try {
      const c = await RawClient.connect(server.path);
      c.send({ cmd: 'Dial', addr: B, port: 7 });
      c.send({ cmd: 'Dial', addr: B, port: 7 });
      const first = await c.waitFor('DialOK');
      const second = await c.waitFor('DialOK', (m) => m.connId !== first.connId);
      c.send({ cmd: 'DialCancel', dialSeq: 2 });
      await c.waitFor('CloseOK', (m) => m.connId === second.connId);
      await until(
        'only the first connection left',
        () => Net.open(n.a).length === 1 && Net.open(n.b).length === 1,
        1000,
        { show: () => tables(n) },
      );
      assert.equal(n.a.endpoint.connection(first.connId)?.state, 'ESTABLISHED', 'the first dial is untouched');
      assert.ok(
        n.bNotices.some((x) => x.kind === 'closed' && x.reason === 'reset'),
        'the second was reset',
      );
      assert.equal(c.received.filter((m) => m.cmd === 'Error').length, 0);
      c.socket.destroy();
    } finally {
      await server.close();
      n.close();
    }
  });
});

describe('a client that goes away', () => {
  it('has its connections closed and released within the linger even mid-transfer, and its ports unbound', async () => {
    const n = new Net();
    await startEcho(n.b);
    // A peer that accepts and then neither reads nor closes.
    const stuck: PilotConn[] = [];
    (await n.b.listen(9)).on('connection', (conn) => {
      conn.pause();
      conn.on('error', () => undefined);
      stuck.push(conn);
    });
    const lingerMs = 400;
    const server = await startServer(n.a, { releaseLingerMs: lingerMs });
    try {
      const c = await RawClient.connect(server.path);
      c.send({ cmd: 'Bind', port: 5000 });
      await c.waitFor('BindOK');
      c.send({ cmd: 'Dial', addr: B, port: 7 });
      const echo = await c.waitFor('DialOK');
      c.send({ cmd: 'Dial', addr: B, port: 9 });
      const sink = await c.waitFor('DialOK', (m) => m.connId !== echo.connId);
      // The client stops reading and sends more than every buffer on the way holds.
      c.socket.pause();
      const chunk = Buffer.alloc(60 * 1024, 7);
      for (let i = 0; i < 200; i++) {
        c.send({ cmd: 'Send', connId: echo.connId, data: chunk });
        c.send({ cmd: 'Send', connId: sink.connId, data: chunk });
      }
      await until(
        'the echo stalls on the unread client',
        () => stuck.length === 1 && (n.a.endpoint.connection(echo.connId)?.stats.recvWindow ?? 1) === 0,
        5000,
        { show: () => n.a.endpoint.connection(echo.connId)?.stats },
      );
      assert.equal(n.a.isBound(5000), true);
      const gone = Date.now();
      c.socket.destroy();
      await until('ports unbound', () => !n.a.isBound(5000), 500);
      await until('every connection closed on both sides', () => bothEmpty(n), lingerMs + 1500, {
        show: () => tables(n),
      });
      assert.ok(Date.now() - gone < lingerMs + 1500);
      await until(
        'nothing held for the gone client',
        () =>
          JSON.stringify(server.resources()) ===
          JSON.stringify({ clients: 0, conns: 0, listeners: 0, dials: 0, lingering: 0 }),
        500,
        { show: () => server.resources() },
      );
      assert.equal(stuck[0]?.destroyed, true, 'the peer that never finished was reset');
    } finally {
      await server.close();
      n.close();
    }
  });

  it('is noticed while the daemon has stopped reading it (a connection it writes to is full)', async () => {
    const n = new Net();
    const stuck: PilotConn[] = [];
    (await n.b.listen(9)).on('connection', (conn) => {
      conn.pause();
      conn.on('error', () => undefined);
      stuck.push(conn);
    });
    const lingerMs = 300;
    const server = await startServer(n.a, { releaseLingerMs: lingerMs });
    try {
      const c = await RawClient.connect(server.path);
      c.send({ cmd: 'Dial', addr: B, port: 9 });
      const sink = await c.waitFor('DialOK');
      const chunk = Buffer.alloc(60 * 1024, 7);
      for (let i = 0; i < 200; i++) c.send({ cmd: 'Send', connId: sink.connId, data: chunk });
      // Nothing flows towards the client: only the daemon's own probing can tell that it is gone.
      let sent = -1;
      await until(
        'the connection is full',
        () => {
          const now = n.a.endpoint.connection(sink.connId)?.stats.bytesSent ?? 0;
          const still = now === sent && now > 0;
          sent = now;
          return still;
        },
        5000,
        { show: () => n.a.endpoint.connection(sink.connId)?.stats, everyMs: 300 },
      );
      c.socket.destroy();
      await until(
        'the client is noticed gone and its connection reset',
        () => bothEmpty(n) && server.resources().clients === 0,
        1500 + lingerMs + 1000,
        { show: () => [tables(n), server.resources()] },
      );
    } finally {
      await server.close();
      n.close();
    }
  });

  it('a Close from a client that stays keeps no timer once the connection has closed', async () => {
    const n = new Net();
    await startEcho(n.b);
    const server = await startServer(n.a);
    try {
      const c = await RawClient.connect(server.path);
      c.send({ cmd: 'Dial', addr: B, port: 7 });
      const ok = await c.waitFor('DialOK');
      c.send({ cmd: 'Close', connId: ok.connId });
      await c.waitFor('CloseOK', (m) => m.connId === ok.connId);
      await until(
        'no lingering timer',
        () => server.resources().lingering === 0 && server.resources().conns === 0,
        1000,
        { show: () => server.resources() },
      );
      c.socket.destroy();
    } finally {
      await server.close();
      n.close();
    }
  });
});

describe('reply order', () => {
  it('a dial whose handshake completes while an earlier command is still running is answered after it, its data after its DialOK', async () => {
    const n = new Net();
    await startEcho(n.b);
    let answerLookup: () => void = () => undefined;
    const server = await startServer(
      n.a,
      {},
      {
        resolveHostname: (name) =>
          new Promise((resolve) => {
            answerLookup = () => resolve({ hostname: name, node_id: 11 });
          }),
      },
    );
    try {
      const c = await RawClient.connect(server.path);
      c.send({ cmd: 'ResolveHostname', hostname: 'slow' });
      c.send({ cmd: 'DialData', addr: B, port: 7, data: Buffer.from('first') });
      c.send({ cmd: 'DialData', addr: B, port: 7, data: Buffer.from('second') });
      await until(
        'both handshakes complete while the lookup waits',
        () => n.a.endpoint.connections().filter((x) => x.state === 'ESTABLISHED').length === 2,
        2000,
        { show: () => tables(n) },
      );
      await delay(20);
      assert.equal(c.received.length, 0, 'nothing answered before the lookup');
      answerLookup();
      await c.waitFor('Recv', (m) => Buffer.from(m.data).toString() === 'second');
      const order = c.received.map((m) =>
        m.cmd === 'Recv' ? `Recv ${Buffer.from(m.data).toString()}` : m.cmd === 'DialOK' ? `DialOK ${m.connId}` : m.cmd,
      );
      const ids = c.received.filter((m) => m.cmd === 'DialOK').map((m) => (m.cmd === 'DialOK' ? m.connId : 0));
      assert.equal(ids.length, 2);
      assert.deepEqual(order, [
        'ResolveHostnameOK',
        `DialOK ${ids[0]}`,
        'Recv first',
        `DialOK ${ids[1]}`,
        'Recv second',
      ]);

      // With nothing before it, a dial is answered from the stack's handling of the SYN-ACK, still in order.
      c.received.length = 0;
      c.send({ cmd: 'DialData', addr: B, port: 7, data: Buffer.from('third') });
      await c.waitFor('Recv', (m) => Buffer.from(m.data).toString() === 'third');
      assert.deepEqual(
        c.received.map((m) => m.cmd),
        ['DialOK', 'Recv'],
      );
      c.socket.destroy();
    } finally {
      await server.close();
      n.close();
    }
  });
});

describe('IPC Error codes', () => {
  it('every failure carries the code of its kind (IPC_ERROR_CODES), the message unchanged', async () => {
    const n = new Net();
    const server = await startServer(
      n.a,
      {},
      {
        handshake: () => Promise.reject(new PilotError('untrusted', 'node 9 does not trust you')),
        setTags: () => Promise.reject(new Error('disk on fire')),
      },
    );
    try {
      const c = await RawClient.connect(server.path);
      const errorFor = async (msg: IpcMessage | Buffer): Promise<{ code: number; message: string }> => {
        const before = c.received.length;
        if (Buffer.isBuffer(msg)) c.socket.write(msg);
        else c.send(msg);
        const deadline = Date.now() + 3000;
        for (;;) {
          const e = c.received.slice(before).find((m) => m.cmd === 'Error');
          if (e && e.cmd === 'Error') return { code: e.code, message: e.message };
          if (Date.now() > deadline) throw new Error(`no Error after ${JSON.stringify(msg)}`);
          await delay(5);
        }
      };
      c.send({ cmd: 'Bind', port: 5000 });
      await c.waitFor('BindOK');
      assert.deepEqual(await errorFor({ cmd: 'Bind', port: 5000 }), { code: 4, message: 'port 5000 is already bound' });
      assert.deepEqual(await errorFor({ cmd: 'Dial', addr: B, port: 4242 }), {
        code: 5,
        message: 'connection refused: no listener on port 4242 of node 11',
      });
      assert.deepEqual(await errorFor({ cmd: 'Send', connId: 999, data: Buffer.from('x') }), {
        code: 3,
        message: 'connection 999 not found',
      });
      assert.deepEqual(await errorFor({ cmd: 'ResolveHostname', hostname: '' }), {
        code: 2,
        message: 'hostname is empty',
      });
      assert.deepEqual(await errorFor({ cmd: 'Handshake', op: { sub: 'Approve', nodeId: 9 } }), {
        code: 6,
        message: 'node 9 does not trust you',
      });
      assert.deepEqual(await errorFor({ cmd: 'SendTo', addr: B, port: 1, data: Buffer.alloc(70_000) }), {
        code: 10,
        message: `datagram of 70000 bytes exceeds the maximum of ${MAX_DATAGRAM_PAYLOAD} bytes`,
      });
      assert.deepEqual(await errorFor(Buffer.from([0, 0, 0, 1, 0x7f])), { code: 12, message: 'unknown command: 0x7f' });
      assert.deepEqual(await errorFor({ cmd: 'SetTags', tags: ['a'] }), { code: 13, message: 'disk on fire' });
      c.socket.destroy();
    } finally {
      await server.close();
      n.close();
    }
  });
});
