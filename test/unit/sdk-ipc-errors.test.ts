import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { decodeIpcMessage, encodeIpcFrame, IpcFrameSplitter, type IpcMessage } from '../../src/protocol/ipc.js';
import { DaemonReplyError, IpcClient } from '../../src/sdk/ipc-client.js';

describe('IPC client: Errors go to the request they answer', () => {
  it('a Close still waiting for its CloseOK (half-close) never takes a later request’s Error', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pilot-ipc-'));
    const path = join(dir, 'd.sock');
    const seen: IpcMessage[] = [];
    let daemon: Socket | undefined;
    const server = createServer((socket) => {
      daemon = socket;
      const splitter = new IpcFrameSplitter();
      socket.on('data', (chunk) => {
        for (const r of splitter.push(chunk)) {
          if (!r.ok) continue;
          const m = decodeIpcMessage(r.value);
          if (!m.ok) continue;
          seen.push(m.value);
          // The dial fails at once; the Close's CloseOK comes only later, when the peer finishes.
          if (m.value.cmd === 'Dial')
            socket.write(
              encodeIpcFrame({ cmd: 'Error', code: 5, message: 'connection refused: no listener on port 7' }),
            );
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(path, resolve));
    const client = await IpcClient.connect(path, {
      onPush: () => undefined,
      onUnsolicitedError: () => undefined,
      onClose: () => undefined,
    });
    try {
      const closed = client.request(
        { cmd: 'Close', connId: 4 },
        'CloseOK',
        () => 'closed',
        (m) => m.cmd === 'CloseOK' && m.connId === 4,
      );
      const dial = client.request({ cmd: 'Dial', addr: { network: 0, node: 9 }, port: 7 }, 'DialOK', () => 'dialled');
      await assert.rejects(dial, (err: unknown) => err instanceof DaemonReplyError && err.daemonCode === 5);
      daemon?.write(encodeIpcFrame({ cmd: 'CloseOK', connId: 4 }));
      assert.equal(await closed, 'closed');
      assert.deepEqual(
        seen.map((m) => m.cmd),
        ['Close', 'Dial'],
      );
    } finally {
      await client.close();
      server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
