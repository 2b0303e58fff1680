import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, request, type IncomingMessage, type RequestOptions } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { Driver } from '../../src/sdk/driver.js';
import { createConnection, PilotAgent, serveHttp } from '../../src/sdk/http.js';
import { TestDaemon } from './sdk-test-peer.js';

async function fetchText(options: RequestOptions, body?: Buffer): Promise<{ status: number; text: string }> {
  const req = request(options);
  req.end(body);
  const [res] = (await once(req, 'response')) as [IncomingMessage];
  const parts: Buffer[] = [];
  for await (const chunk of res) parts.push(chunk as Buffer);
  return { status: res.statusCode ?? 0, text: Buffer.concat(parts).toString() };
}

describe('sdk HTTP over pilot', () => {
  let daemon: TestDaemon;
  let serverSide: Driver;
  let clientSide: Driver;
  const server = createServer((req, res) => {
    let size = 0;
    req.on('data', (d: Buffer) => (size += d.length));
    req.on('end', () => res.end(`${req.method} ${req.url} ${size}`));
  });

  before(async () => {
    daemon = await TestDaemon.start();
    serverSide = await Driver.connect(daemon.path);
    clientSide = await Driver.connect(daemon.path);
    await serveHttp(serverSide, 80, server);
  });
  after(async () => {
    server.close();
    await clientSide.close();
    await serverSide.close();
    await daemon.close();
  });

  it('serves http.Server requests made with createConnection', async () => {
    const res = await fetchText({
      host: '0:0000.0000.0005',
      port: 80,
      path: '/hello',
      createConnection: createConnection(clientSide),
    });
    assert.deepEqual(res, { status: 200, text: 'GET /hello 0' });
  });

  it('carries a large request body and resolves hostnames through the daemon', async () => {
    const body = Buffer.alloc(300 * 1024, 0x61);
    const res = await fetchText(
      { host: 'web', port: 80, method: 'POST', path: '/upload', createConnection: createConnection(clientSide) },
      body,
    );
    assert.deepEqual(res, { status: 200, text: `POST /upload ${body.length}` });
  });

  it('reuses a kept-alive connection through PilotAgent', async () => {
    const agent = new PilotAgent(clientSide, { keepAlive: true, addr: '0:0000.0000.0005', port: 80 });
    try {
      const first = await fetchText({ agent, path: '/a' });
      const second = await fetchText({ agent, path: '/b' });
      assert.deepEqual([first.text, second.text], ['GET /a 0', 'GET /b 0']);
      const dials = daemon.clients[1]!.messages.filter((m) => m.msg.cmd === 'Dial').length;
      const third = await fetchText({ agent, path: '/c' });
      assert.equal(third.text, 'GET /c 0');
      assert.equal(daemon.clients[1]!.messages.filter((m) => m.msg.cmd === 'Dial').length, dials);
    } finally {
      agent.destroy();
    }
  });

  it('reports a refused dial as a request error', async () => {
    const req = request({
      host: '0:0000.0000.0005',
      port: 81,
      path: '/',
      createConnection: createConnection(clientSide),
    });
    req.end();
    const [err] = (await once(req, 'error')) as [Error & { code?: string }];
    assert.equal(err.code, 'connection_failed');
  });
});
