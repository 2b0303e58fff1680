import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, request, type IncomingMessage } from 'node:http';
import { Duplex } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import type { PilotConn } from '../../src/pilot-net.js';
import { Driver } from '../../src/sdk/driver.js';
import { createConnection, serveHttp } from '../../src/sdk/http.js';
import { OpeningStream } from '../../src/sdk/opening-stream.js';
import { TestDaemon } from './sdk-test-peer.js';

/** An in-memory connection: what is written to it is collected, `reply` makes it readable. */
class MemoryConn extends Duplex {
  readonly written: Buffer[] = [];
  id = 1;
  localAddr = { network: 0, node: 1 };
  localPort = 49152;
  remoteAddr = { network: 0, node: 2 };
  remotePort = 80;
  override _read(): void {}
  override _write(chunk: Buffer, _e: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.written.push(chunk);
    cb();
  }
  setTimeout(): this {
    return this;
  }
  reply(data: string): void {
    this.push(Buffer.from(data));
  }
}

describe('OpeningStream (a stream handed out before its dial completes)', () => {
  it('the first bytes go as written even when the writer refills its buffer once the write is done', async () => {
    let first: Uint8Array | undefined;
    const stream = new OpeningStream((data) => {
      first = data;
      return new Promise(() => undefined);
    });
    const buf = Buffer.from('first');
    await new Promise<void>((resolve) => stream.write(buf, () => resolve()));
    buf.write('xxxxx');
    await new Promise((r) => setImmediate(r));
    assert.equal(Buffer.from(first ?? []).toString(), 'first');
    stream.destroy();
  });

  it('what is written in its first turn goes with the dial; later writes follow the connection, in order', async () => {
    let first: Uint8Array | undefined;
    const conn = new MemoryConn();
    let resolveDial: (c: PilotConn) => void = () => undefined;
    const stream = new OpeningStream((data) => {
      first = data;
      return new Promise((r) => {
        resolveDial = r;
      });
    });
    stream.write('GET / HTTP/1.1\r\n');
    stream.write('\r\n');
    await new Promise((r) => setImmediate(r));
    assert.equal(Buffer.from(first ?? []).toString(), 'GET / HTTP/1.1\r\n\r\n');
    assert.equal(stream.connecting, true);
    stream.write('later');
    stream.end();
    resolveDial(conn as unknown as PilotConn);
    await once(stream, 'connect');
    assert.equal(stream.connecting, false);
    conn.reply('pong');
    const [chunk] = (await once(stream, 'data')) as [Buffer];
    assert.equal(chunk.toString(), 'pong');
    await new Promise((r) => setImmediate(r));
    assert.equal(Buffer.concat(conn.written).toString(), 'later', 'the early bytes were not written twice');
  });

  it('a failed dial destroys the stream with its error', async () => {
    const stream = new OpeningStream(() => Promise.reject(Object.assign(new Error('refused'), { code: 'refused' })));
    const [err] = (await once(stream, 'error')) as [Error & { code?: string }];
    assert.equal(err.code, 'refused');
    assert.equal(stream.destroyed, true);
  });

  it('a stream destroyed while its dial is under way closes the connection when it comes', async () => {
    const conn = new MemoryConn();
    let resolveDial: (c: PilotConn) => void = () => undefined;
    const stream = new OpeningStream(
      () =>
        new Promise((r) => {
          resolveDial = r;
        }),
    );
    await new Promise((r) => setImmediate(r));
    stream.destroy();
    resolveDial(conn as unknown as PilotConn);
    await new Promise((r) => setImmediate(r));
    assert.equal(conn.destroyed, true);
  });
});

describe('HTTP over pilot: the request goes with the dial', () => {
  let daemon: TestDaemon;
  let serverSide: Driver;
  let clientSide: Driver;
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => res.end(`${req.method} ${req.url} ${body}`));
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

  it('the dial carries the request head and body as its first bytes', async () => {
    const dials: { port: number; data?: string }[] = [];
    const recording = {
      dial: (addr: string, port: number, options?: { data?: Uint8Array }) => {
        dials.push(options?.data ? { port, data: Buffer.from(options.data).toString() } : { port });
        return clientSide.dial(addr, port, options);
      },
    };
    const req = request({
      host: '0:0000.0000.0005',
      port: 80,
      method: 'POST',
      path: '/x',
      headers: { 'content-type': 'text/plain' },
      createConnection: createConnection(recording),
    });
    req.end('hello');
    const [res] = (await once(req, 'response')) as [IncomingMessage];
    let text = '';
    for await (const chunk of res) text += (chunk as Buffer).toString();
    assert.equal(text, 'POST /x hello');
    assert.equal(dials.length, 1);
    assert.match(dials[0]?.data ?? '', /^POST \/x HTTP\/1\.1\r\n[\s\S]*\r\n\r\nhello$/);
  });
});
