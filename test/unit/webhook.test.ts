import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { logEvent } from '../../src/daemon/event-log.js';
import { encodeWebhookBody, WebhookDispatcher } from '../../src/daemon/webhook.js';
import { rfc3339Nano } from '../../src/protocol/go-time.js';
import { PilotError } from '../../src/errors.js';
import { waitFor } from '../wait.js';

interface Received {
  readonly path: string;
  readonly headers: IncomingMessage['headers'];
  readonly body: string;
}

type Handler = (req: IncomingMessage, res: ServerResponse, received: Received) => void;

/** A local HTTP server recording every request; the handler decides how (and whether) to answer. */
async function listen(
  handler: Handler = (_req, res) => res.end(),
): Promise<{ url: string; received: Received[]; server: Server; close(): Promise<void> }> {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r = { path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString() };
      received.push(r);
      handler(req, res, r);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const address = server.address();
  assert.ok(address && typeof address === 'object');
  return {
    url: `http://127.0.0.1:${address.port}`,
    received,
    server,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe('webhook body', () => {
  it('formats timestamps like Go RFC3339Nano', () => {
    assert.equal(rfc3339Nano(new Date('2026-02-15T10:30:00.120Z')), '2026-02-15T10:30:00.12Z');
    assert.equal(rfc3339Nano(new Date('2026-02-15T10:30:00.000Z')), '2026-02-15T10:30:00Z');
    assert.equal(rfc3339Nano(new Date('2026-02-15T10:30:00.007Z')), '2026-02-15T10:30:00.007Z');
  });

  it('orders fields like the reference, sorts data keys and omits absent data', () => {
    const at = new Date('2026-02-15T10:30:00.5Z');
    assert.equal(
      encodeWebhookBody('conn.fin', 7, at, { remote_port: 1000, conn_id: 3, nested: { b: 1, a: [{ d: 1, c: 2 }] } }),
      '{"event":"conn.fin","node_id":7,"timestamp":"2026-02-15T10:30:00.5Z","data":{"conn_id":3,"nested":{"a":[{"c":2,"d":1}],"b":1},"remote_port":1000}}',
    );
    assert.equal(
      encodeWebhookBody('node.deregistered', 7, at),
      '{"event":"node.deregistered","node_id":7,"timestamp":"2026-02-15T10:30:00.5Z"}',
    );
  });
});

describe('WebhookDispatcher', () => {
  it('POSTs JSON with the node id and the event data', async () => {
    const srv = await listen();
    let nodeId = 0;
    const hooks = new WebhookDispatcher({ url: `${srv.url}/hook`, nodeId: () => nodeId });
    try {
      nodeId = 42;
      hooks.emit('tunnel.peer_added', { peer_node_id: 9, endpoint: '1.2.3.4:4000' });
      await waitFor(() => hooks.delivered === 1);
      const [r] = srv.received;
      assert.ok(r);
      assert.equal(r.path, '/hook');
      assert.equal(r.headers['content-type'], 'application/json');
      const body = JSON.parse(r.body) as Record<string, unknown>;
      assert.deepEqual(Object.keys(body), ['event', 'node_id', 'timestamp', 'data']);
      assert.equal(body.event, 'tunnel.peer_added');
      assert.equal(body.node_id, 42);
      assert.match(String(body.timestamp), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
      assert.deepEqual(body.data, { endpoint: '1.2.3.4:4000', peer_node_id: 9 });
      assert.ok(r.body.indexOf('"endpoint"') < r.body.indexOf('"peer_node_id"'));
    } finally {
      await hooks.close();
      await srv.close();
    }
  });

  it('delivers in order, one request at a time', async () => {
    let concurrent = 0;
    let maxConcurrent = 0;
    const srv = await listen((_req, res) => {
      concurrent++;
      maxConcurrent = Math.max(maxConcurrent, concurrent);
      setTimeout(() => {
        concurrent--;
        res.end();
      }, 2);
    });
    const hooks = new WebhookDispatcher({ url: srv.url });
    try {
      for (let i = 0; i < 30; i++) hooks.emit('data.datagram', { size: i });
      await waitFor(() => hooks.delivered === 30);
      const sizes = srv.received.map((r) => (JSON.parse(r.body) as { data: { size: number } }).data.size);
      assert.deepEqual(
        sizes,
        Array.from({ length: 30 }, (_, i) => i),
      );
      assert.equal(maxConcurrent, 1);
    } finally {
      await hooks.close();
      await srv.close();
    }
  });

  it('never blocks the caller and bounds the queue under a hanging server', async () => {
    const srv = await listen(() => undefined); // never answers
    const hooks = new WebhookDispatcher({ url: srv.url, queueLimit: 10, timeoutMs: 200 });
    try {
      const started = performance.now();
      for (let i = 0; i < 1000; i++) hooks.emit('message.received', { size: i });
      assert.ok(performance.now() - started < 200, 'emit must return immediately');
      assert.equal(srv.received.length, 0, 'no I/O before emit returns');
      assert.equal(hooks.dropped, 990);
      // The first post times out after 200 ms and the next one goes out.
      await waitFor(() => srv.received.length >= 2, 2000);
      assert.equal(hooks.failed >= 1, true);
      assert.equal(hooks.delivered, 0);
    } finally {
      await hooks.close(0);
      await srv.close();
    }
    assert.equal(hooks.pending, 0);
  });

  it('counts status >= 400 as failed and carries on', async () => {
    const srv = await listen((_req, res) => {
      res.statusCode = srv.received.length === 1 ? 500 : 204;
      res.end();
    });
    const hooks = new WebhookDispatcher({ url: srv.url });
    try {
      hooks.emit('conn.rst');
      hooks.emit('conn.fin');
      await waitFor(() => hooks.delivered + hooks.failed === 2);
      assert.equal(hooks.failed, 1);
      assert.equal(hooks.delivered, 1);
    } finally {
      await hooks.close();
      await srv.close();
    }
  });

  it('sends every event after a URL change to the new URL', async () => {
    const a = await listen();
    const b = await listen();
    const hooks = new WebhookDispatcher({ url: a.url });
    try {
      hooks.emit('node.registered', { address: '0:0000.0000.0001', endpoint: '1.2.3.4:4000' });
      hooks.setUrl(b.url);
      hooks.emit('pubsub.published', { topic: 't', size: 1, from: 'x' });
      hooks.emit('trust.revoked', { peer_node_id: 3 });
      await waitFor(() => hooks.delivered === 3);
      assert.deepEqual(
        a.received.map((r) => (JSON.parse(r.body) as { event: string }).event),
        ['node.registered'],
      );
      assert.deepEqual(
        b.received.map((r) => (JSON.parse(r.body) as { event: string }).event),
        ['pubsub.published', 'trust.revoked'],
      );
      hooks.setUrl(undefined);
      hooks.emit('trust.revoked', { peer_node_id: 4 });
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(b.received.length, 2);
    } finally {
      await hooks.close();
      await a.close();
      await b.close();
    }
  });

  it('lets an observer see every event, also without a URL (the daemon logs them)', () => {
    const seen: string[] = [];
    const d = new WebhookDispatcher({ observe: (event) => seen.push(event) });
    d.emit('handshake.pending', { peer_node_id: 2 });
    d.emit('conn.fin', { conn_id: 1 });
    assert.deepEqual(seen, ['handshake.pending', 'conn.fin']);
    const lines: { level: string; event: unknown }[] = [];
    const log = pino(
      { level: 'info' },
      { write: (l: string) => lines.push({ level: String(JSON.parse(l).level), event: JSON.parse(l).event }) },
    );
    logEvent(log, 'handshake.pending', { peer_node_id: 2 });
    logEvent(log, 'conn.fin', { conn_id: 1 });
    logEvent(log, 'tunnel.direct_upgraded', { peer_node_id: 2 });
    assert.deepEqual(
      lines,
      [
        { level: '30', event: 'handshake.pending' },
        { level: '30', event: 'tunnel.direct_upgraded' },
      ],
      'connections only at debug',
    );
  });

  it('rejects URLs that are not http or https', () => {
    const hooks = new WebhookDispatcher();
    for (const bad of ['ftp://example.com/x', 'file:///etc/passwd', 'not a url', 'javascript:alert(1)']) {
      assert.throws(
        () => hooks.setUrl(bad),
        (err: unknown) => err instanceof PilotError && err.code === 'invalid_argument',
      );
    }
    assert.throws(() => new WebhookDispatcher({ url: 'gopher://x' }), PilotError);
    hooks.setUrl('https://example.com/hook');
    assert.equal(hooks.getUrl(), 'https://example.com/hook');
  });

  it('close lets queued events go out, then stops accepting', async () => {
    const srv = await listen((_req, res) => setTimeout(() => res.end(), 5));
    const hooks = new WebhookDispatcher({ url: srv.url });
    for (let i = 0; i < 5; i++) hooks.emit('conn.established', { conn_id: i });
    await hooks.close();
    assert.equal(hooks.delivered, 5);
    hooks.emit('conn.established', { conn_id: 99 });
    await new Promise((resolve) => setTimeout(resolve, 30));
    assert.equal(srv.received.length, 5);
    await srv.close();
  });

  it('a failing URL does not stall later events', async () => {
    const srv = await listen();
    const hooks = new WebhookDispatcher({ url: 'http://127.0.0.1:1/unreachable', timeoutMs: 500 });
    try {
      hooks.emit('conn.rst');
      hooks.setUrl(srv.url);
      hooks.emit('conn.fin');
      await waitFor(() => hooks.delivered === 1);
      assert.equal(hooks.failed, 1);
    } finally {
      await hooks.close();
      await srv.close();
    }
  });
});
