import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { PilotError } from '../../src/errors.js';
import { encodeIpcFrame, type IpcMessage } from '../../src/protocol/ipc.js';
import { Driver } from '../../src/sdk/driver.js';
import { PEER_ADDR, TestDaemon, type PeerClient } from './sdk-test-peer.js';
import { waitFor } from '../wait.js';

const delay = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('sdk Driver over IPC', () => {
  let daemon: TestDaemon;
  before(async () => {
    daemon = await TestDaemon.start();
  });
  after(async () => {
    await daemon.close();
  });

  it('reports a missing daemon as not_running with a hint', async () => {
    await assert.rejects(Driver.connect(`${daemon.path}.missing`), (err: unknown) => {
      assert.ok(err instanceof PilotError);
      assert.equal(err.code, 'not_running');
      assert.match(err.hint ?? '', /pilotctl daemon start/);
      return true;
    });
  });

  it('takes its address from Info and types the InfoOK object', async () => {
    const driver = await Driver.connect(daemon.path);
    try {
      assert.deepEqual(driver.localAddr, PEER_ADDR);
      const info = await driver.info();
      assert.equal(info.node_id, 5);
      assert.equal(info.uptime_secs, 12);
      assert.deepEqual(info.conn_list, []);
      assert.equal(info.encrypt, false);
      assert.deepEqual(await driver.health(), { ok: true, uptimeSecs: 12, nodeId: 5, address: '0:0000.0000.0005' });
    } finally {
      await driver.close();
    }
  });

  it('reassembles frames split across reads and several frames in one read', async () => {
    const driver = await Driver.connect(daemon.path);
    daemon.intercept = (client, msg) => {
      if (msg.cmd !== 'SetHostname') return false;
      const a = encodeIpcFrame({ cmd: 'SetHostnameOK', json: { hostname: msg.hostname } });
      const push = encodeIpcFrame({
        cmd: 'RecvFrom',
        srcAddr: PEER_ADDR,
        srcPort: 1,
        dstPort: 2,
        data: Buffer.from('x'),
      });
      void (async () => {
        for (const part of [a.subarray(0, 2), a.subarray(2, 7), a.subarray(7)]) {
          client.socket.write(part);
          await delay(5);
        }
        client.socket.write(Buffer.concat([push, push]));
      })();
      return true;
    };
    try {
      let datagrams = 0;
      driver.on('datagram', () => datagrams++);
      assert.deepEqual(await driver.setHostname('split'), { hostname: 'split' });
      await waitFor(() => datagrams === 2);
    } finally {
      daemon.intercept = null;
      await driver.close();
    }
  });

  it('matches replies to the oldest request waiting for that command, around pushes', async () => {
    const driver = await Driver.connect(daemon.path);
    const held: Array<{ client: PeerClient; msg: IpcMessage }> = [];
    daemon.intercept = (client, msg) => {
      held.push({ client, msg });
      return true;
    };
    try {
      const first = driver.setHostname('a');
      const resolve = driver.resolveHostname('web');
      const second = driver.setHostname('b');
      await waitFor(() => held.length === 3);
      const client = held[0]!.client;
      const datagram: IpcMessage = {
        cmd: 'RecvFrom',
        srcAddr: PEER_ADDR,
        srcPort: 9,
        dstPort: 9,
        data: Buffer.from('d'),
      };
      let datagrams = 0;
      driver.on('datagram', () => datagrams++);
      daemon.write(client, datagram);
      daemon.write(client, {
        cmd: 'ResolveHostnameOK',
        json: { type: 'resolve_hostname_ok', address: '0:0000.0000.0007' },
      });
      daemon.write(client, { cmd: 'SetHostnameOK', json: { hostname: 'a' } });
      daemon.write(client, datagram);
      daemon.write(client, { cmd: 'SetHostnameOK', json: { hostname: 'b' } });
      assert.deepEqual(await first, { hostname: 'a' });
      assert.equal((await resolve).address, '0:0000.0000.0007');
      assert.deepEqual(await second, { hostname: 'b' });
      assert.equal(datagrams, 2);
    } finally {
      daemon.intercept = null;
      await driver.close();
    }
  });

  it('hands an Error to the oldest pending request, and emits one with none pending', async () => {
    const driver = await Driver.connect(daemon.path);
    const held: PeerClient[] = [];
    daemon.intercept = (client, msg) => {
      if (msg.cmd !== 'SetHostname') return false;
      held.push(client);
      return true;
    };
    try {
      const first = driver.setHostname('a');
      const second = driver.setHostname('b');
      await waitFor(() => held.length === 2);
      const client = held[0]!;
      daemon.write(client, { cmd: 'Error', code: 1, message: 'registry: request failed' });
      daemon.write(client, { cmd: 'SetHostnameOK', json: { hostname: 'b' } });
      await assert.rejects(
        first,
        (err: unknown) => err instanceof PilotError && /registry: request failed/.test(err.message),
      );
      assert.deepEqual(await second, { hostname: 'b' });

      // No listener: dropped without crashing.
      daemon.write(client, { cmd: 'Error', code: 1, message: 'send failed' });
      await delay(20);
      const errors: PilotError[] = [];
      driver.on('error', (err) => errors.push(err));
      daemon.write(client, { cmd: 'Error', code: 1, message: 'connection not established' });
      await waitFor(() => errors.length === 1);
      assert.equal(errors[0]!.code, 'connection_failed');
      assert.match(errors[0]!.message, /not established/);
      daemon.intercept = null;
      assert.equal((await driver.info()).node_id, 5);
    } finally {
      daemon.intercept = null;
      await driver.close();
    }
  });

  it('maps dial errors, validates arguments, and times out a dial', async () => {
    const driver = await Driver.connect(daemon.path);
    try {
      await assert.rejects(driver.dial('0:0000.0000.0009', 4242), {
        code: 'connection_failed',
        message: /connection refused/,
      });
      await assert.rejects(driver.dial('not-an-address', 1), { code: 'invalid_argument' });
      await assert.rejects(driver.dial(PEER_ADDR, 70000), { code: 'invalid_argument' });
      await assert.rejects(driver.setTags(['a', 'b', 'c', 'd']), { code: 'invalid_argument' });

      daemon.intercept = (client, msg) => {
        if (msg.cmd !== 'Dial') return false;
        daemon.write(client, { cmd: 'Error', code: 6, message: 'connection refused: node 9 does not trust this node' });
        return true;
      };
      await assert.rejects(driver.dial('0:0000.0000.0009', 1000), {
        code: 'untrusted',
        message: 'dial 0:0000.0000.0009:1000: daemon: connection refused: node 9 does not trust this node',
      });

      const dials: PeerClient[] = [];
      daemon.intercept = (client, msg) => {
        if (msg.cmd !== 'Dial') return false;
        dials.push(client);
        return true;
      };
      await assert.rejects(driver.dial(PEER_ADDR, 1000, { timeoutMs: 50 }), { code: 'timeout' });
      const client = dials[0]!;
      const before = client.messages.length;
      daemon.write(client, { cmd: 'DialOK', connId: 77 });
      await waitFor(() => client.messages.slice(before).some((m) => m.msg.cmd === 'Close' && m.msg.connId === 77));
    } finally {
      daemon.intercept = null;
      await driver.close();
    }
  });

  it('maps daemon Error codes to typed errors by number, never by message text', async () => {
    const driver = await Driver.connect(daemon.path);
    let reply = { code: 1, message: '' };
    daemon.intercept = (client, msg) => {
      if (msg.cmd !== 'Dial' && msg.cmd !== 'Bind' && msg.cmd !== 'ResolveHostname' && msg.cmd !== 'Handshake')
        return false;
      daemon.write(client, { cmd: 'Error', ...reply });
      return true;
    };
    const dialCode = async (code: number, message: string): Promise<string> => {
      reply = { code, message };
      const err = await driver.dial('0:0000.0000.0009', 1000).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(err instanceof PilotError);
      assert.equal(err.message, `dial 0:0000.0000.0009:1000: daemon: ${message}`, 'the message travels unchanged');
      return err.code;
    };
    try {
      const table: [number, string][] = [
        [2, 'invalid_argument'],
        [3, 'not_found'],
        [4, 'already_exists'],
        [5, 'refused'],
        [6, 'untrusted'],
        [7, 'timeout'],
        [8, 'unavailable'],
        [9, 'rate_limited'],
        [10, 'too_large'],
        [11, 'connection_failed'],
        [12, 'protocol'],
        [13, 'internal'],
        [14, 'not_running'],
      ];
      for (const [code, expected] of table)
        assert.equal(await dialCode(code, 'something failed'), expected, `code ${code}`);
      // Words in the message mean nothing: 1 (the reference's only code) and unknown numbers give the operation's default.
      assert.equal(await dialCode(1, 'node 9 is not trusted'), 'connection_failed');
      assert.equal(await dialCode(1, 'connection refused: no listener on port 1000 of node 9'), 'connection_failed');
      assert.equal(await dialCode(999, 'port full'), 'connection_failed');
      assert.equal(await dialCode(3, 'it did trust us once'), 'not_found');
      reply = { code: 1, message: 'port 4000 already bound' };
      await assert.rejects(driver.listen(4000), { code: 'connection_failed' });
      reply = { code: 4, message: 'in use' };
      await assert.rejects(driver.listen(4000), { code: 'already_exists' });
      reply = { code: 1, message: 'hostname not found' };
      await assert.rejects(driver.resolveHostname('nope'), { code: 'not_found' }, 'the default of a lookup');
      reply = { code: 8, message: 'registry unreachable' };
      await assert.rejects(driver.resolveHostname('nope'), { code: 'unavailable' });
      reply = { code: 6, message: 'x' };
      await assert.rejects(driver.approve(9), { code: 'untrusted' });
    } finally {
      daemon.intercept = null;
      await driver.close();
    }
  });

  it('sends first bytes with the Dial (DialData) to a daemon that lists dial_data, and Dial + Send to one that does not', async () => {
    let dialDataSeen = 0;
    daemon.intercept = (client, msg) => {
      if (msg.cmd !== 'DialData') return false;
      dialDataSeen++;
      daemon.write(client, { cmd: 'DialOK', connId: 901 });
      return true;
    };
    daemon.features = ['dial_data'];
    const driver = await Driver.connect(daemon.path);
    daemon.features = [];
    const plain = await Driver.connect(daemon.path);
    const owner = await Driver.connect(daemon.path);
    try {
      const client = daemon.clients.at(-3)!;
      const sent = (c: PeerClient, from: number): IpcMessage[] => c.messages.slice(from).map((m) => m.msg);
      const mark = client.messages.length;
      const first = await driver.dial(PEER_ADDR, 4000, { data: Buffer.from('hello') });
      assert.equal(first.id, 901);
      const one = sent(client, mark);
      assert.equal(one.length, 1, 'one frame: the dial carries the data');
      assert.equal(one[0]?.cmd, 'DialData');
      assert.equal(Buffer.from((one[0] as IpcMessage & { cmd: 'DialData' }).data).toString(), 'hello');

      await owner.listen(4001);
      const plainClient = daemon.clients.at(-2)!;
      const at = plainClient.messages.length;
      const fallback = await plain.dial(PEER_ADDR, 4001, { data: Buffer.from('again') });
      await waitFor(() => sent(plainClient, at).some((m) => m.cmd === 'Send'));
      assert.deepEqual(
        sent(plainClient, at).map((m) => m.cmd),
        ['Dial', 'Send'],
        'never a DialData to a daemon that did not list it',
      );
      assert.equal(dialDataSeen, 1);
      fallback.destroy();
    } finally {
      daemon.intercept = null;
      await owner.close();
      await plain.close();
      await driver.close();
    }
  });

  it('cancels a dial it gave up on in a daemon that lists dial_cancel, naming it by its number', async () => {
    const held: { client: PeerClient; msg: IpcMessage }[] = [];
    daemon.intercept = (client, msg) => {
      if (msg.cmd === 'DialCancel') return true; // no reply, as from a pilot-ts daemon
      if (msg.cmd !== 'Dial') return false;
      held.push({ client, msg });
      return true;
    };
    daemon.features = ['dial_cancel'];
    const driver = await Driver.connect(daemon.path);
    daemon.features = [];
    const client = daemon.clients.at(-1)!;
    const sent = (): IpcMessage[] => client.messages.map((m) => m.msg);
    try {
      await assert.rejects(driver.dial(PEER_ADDR, 1000, { timeoutMs: 30 }), { code: 'timeout' });
      await waitFor(() => sent().some((m) => m.cmd === 'DialCancel'));
      assert.deepEqual(
        sent().filter((m) => m.cmd === 'DialCancel'),
        [{ cmd: 'DialCancel', dialSeq: 1 }],
      );
      const ac = new AbortController();
      const second = driver.dial(PEER_ADDR, 1000, { signal: ac.signal });
      ac.abort();
      await assert.rejects(second, { name: 'AbortError' });
      await waitFor(() => sent().filter((m) => m.cmd === 'DialCancel').length === 2);
      assert.deepEqual(
        sent()
          .filter((m) => m.cmd === 'DialCancel')
          .at(-1),
        { cmd: 'DialCancel', dialSeq: 2 },
      );
      // An aborted signal sends nothing at all.
      await assert.rejects(driver.dial(PEER_ADDR, 1000, { signal: ac.signal }), { name: 'AbortError' });
      assert.equal(sent().filter((m) => m.cmd === 'Dial').length, 2);
      // The daemon answers the cancelled dials (an Error, a DialOK that came too late): both are
      // consumed by them, with no Close (the daemon resets what it made), and the next request works.
      daemon.write(client, { cmd: 'Error', code: 7, message: 'dial cancelled by the client' });
      daemon.write(client, { cmd: 'DialOK', connId: 55 });
      assert.equal((await driver.info()).node_id, PEER_ADDR.node);
      assert.equal(sent().filter((m) => m.cmd === 'Close').length, 0);
    } finally {
      daemon.intercept = null;
      await driver.close();
    }
  });

  it('runs trust operations and parses the lists', async () => {
    const driver = await Driver.connect(daemon.path);
    try {
      assert.deepEqual(await driver.handshake(9, 'hello'), { node_id: 9, status: 'sent' });
      assert.deepEqual(await driver.pending(), [
        { node_id: 9, justification: 'hi', public_key: 'k', received_at: 100 },
      ]);
      assert.deepEqual(await driver.trusted(), []);
      await assert.rejects(driver.resolveHostname('nobody'), { code: 'not_found' });
      await assert.rejects(driver.approve(-1), { code: 'invalid_argument' });
    } finally {
      await driver.close();
    }
  });

  it('fails pending requests and reports close when the daemon goes away', async () => {
    const driver = await Driver.connect(daemon.path);
    daemon.intercept = (client, msg) => {
      if (msg.cmd !== 'SetHostname') return false;
      client.socket.destroy();
      return true;
    };
    const closed = new Promise<PilotError | null>((resolve) => driver.once('close', resolve));
    try {
      await assert.rejects(driver.setHostname('x'), { code: 'not_running' });
      const err = await closed;
      assert.equal(err?.code, 'not_running');
      await assert.rejects(driver.info(), { code: 'not_running' });
    } finally {
      daemon.intercept = null;
      await driver.close();
    }
  });

  it('rejects connect with an AbortError when the signal is already aborted', async () => {
    await assert.rejects(Driver.connect(daemon.path, { signal: AbortSignal.abort() }), { name: 'AbortError' });
  });
});
