import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Duplex, PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import type { CliConn, CliDatagram, CliListener } from '../../src/cli/context.js';
import { EchoConn, fakeDriver, harness } from './cli-harness.js';

const json = (text: string): { data: Record<string, unknown>; status: string } => JSON.parse(text);

describe('pilotctl commands against a daemon stand-in', () => {
  it('info passes the daemon object through; human output is readable lines', async () => {
    const { driver } = fakeDriver();
    const h = await harness({ driver });
    try {
      assert.equal(await h.run(['info', '--json']), 0);
      assert.equal(
        h.stdout.text,
        '{"data":{"address":"0:0000.0000.0005","conn_list":[],"hostname":"alice","node_id":5,"peer_list":[]},"status":"ok"}\n',
      );
      h.stdout.text = '';
      assert.equal(await h.run(['info']), 0);
      assert.match(h.stdout.text, /^address {5}0:0000\.0000\.0005$/m);
    } finally {
      await h.cleanup();
    }
  });

  it('peers filters by --search and reports null when nothing matches', async () => {
    const peerList = [
      { authenticated: true, encrypted: true, endpoint: '10.0.0.1:4000', node_id: 12 },
      { authenticated: false, encrypted: true, endpoint: '192.168.1.9:4000', node_id: 30 },
    ];
    const { driver } = fakeDriver({ info: async () => ({ peer_list: peerList, conn_list: [] }) });
    const registry = {
      lookup: async (id: number) => (id === 12 ? { hostname: 'gpu-box', node_id: 12 } : { node_id: id }),
      close: () => undefined,
    };
    const h = await harness({ driver, registry });
    try {
      assert.equal(await h.run(['peers', '--search', '192.168', '--json']), 0);
      assert.deepEqual(json(h.stdout.text).data, { peers: [peerList[1]], total: 1 });
      h.stdout.text = '';
      assert.equal(await h.run(['peers', '--search', 'GPU', '--json']), 0);
      assert.deepEqual(
        json(h.stdout.text).data,
        { peers: [{ ...peerList[0], hostname: 'gpu-box' }], total: 1 },
        'found by hostname',
      );
      h.stdout.text = '';
      await h.run(['peers', '--search', 'nomatch', '--json']);
      assert.deepEqual(json(h.stdout.text).data, { peers: null, total: 0 });
      h.stdout.text = '';
      await h.run(['peers']);
      assert.match(
        h.stdout.text,
        /^NODE ID +HOSTNAME +ENDPOINT +PATH +ENCRYPTED +AUTHENTICATED\n12 +gpu-box +10\.0\.0\.1:4000 +direct +yes +yes\n30 +- /,
      );
    } finally {
      await h.cleanup();
    }
  });

  it('handshake resolves a hostname to its node id', async () => {
    const { driver, calls } = fakeDriver();
    const h = await harness({ driver });
    try {
      assert.equal(await h.run(['handshake', 'bob', 'please', 'trust', 'me', '--json']), 0);
      assert.deepEqual(calls.find((c) => c.method === 'handshake')?.args, [7, 'please trust me']);
      assert.deepEqual(json(h.stdout.text).data, { node_id: 9, status: 'sent' });
      assert.ok(
        calls.some((c) => c.method === 'close'),
        'driver closed',
      );
    } finally {
      await h.cleanup();
    }
  });

  it('find maps a failed resolution to not_found; approve validates node ids', async () => {
    const { driver } = fakeDriver();
    const h = await harness({ driver });
    try {
      assert.equal(await h.run(['find', 'carol', '--json']), 1);
      assert.equal(JSON.parse(h.stderr.text).code, 'not_found');
      h.stderr.text = '';
      assert.equal(await h.run(['approve', 'x1', '--json']), 2, 'a usage error');
      assert.equal(JSON.parse(h.stderr.text).code, 'invalid_argument');
    } finally {
      await h.cleanup();
    }
  });

  it('pending and trust wrap the lists', async () => {
    const entry = { justification: 'hi', node_id: 4, public_key: 'AAAA', received_at: 1_700_000_000 };
    const { driver } = fakeDriver({ pending: async () => [entry], trusted: async () => [] });
    const h = await harness({ driver });
    try {
      await h.run(['pending', '--json']);
      assert.deepEqual(json(h.stdout.text).data, { pending: [entry] });
      h.stdout.text = '';
      await h.run(['pending']);
      assert.match(h.stdout.text, /^NODE ID +HOSTNAME +RECEIVED +JUSTIFICATION\n4 +- +2023-11-14T22:13:20Z +hi\n$/);
      h.stdout.text = '';
      await h.run(['trust', '--json']);
      assert.deepEqual(json(h.stdout.text).data, { trusted: [] });
    } finally {
      await h.cleanup();
    }
  });

  it('set-hostname stores the name in config.json; set-webhook without a daemon is stored but not applied', async () => {
    const { driver } = fakeDriver();
    const withDaemon = await harness({ driver });
    try {
      assert.equal(await withDaemon.run(['set-hostname', 'alice', '--json']), 0);
      assert.deepEqual(json(withDaemon.stdout.text).data, { hostname: 'alice', node_id: 5 });
      assert.equal(JSON.parse(await readFile(join(withDaemon.home, 'config.json'), 'utf8')).hostname, 'alice');
    } finally {
      await withDaemon.cleanup();
    }
    const h = await harness();
    try {
      assert.equal(await h.run(['set-webhook', 'https://example.com/h', '--json']), 0);
      assert.deepEqual(json(h.stdout.text).data, { applied: false, webhook: 'https://example.com/h' });
      assert.equal(JSON.parse(await readFile(join(h.home, 'config.json'), 'utf8')).webhook, 'https://example.com/h');
      h.stdout.text = '';
      assert.equal(await h.run(['clear-webhook', '--json']), 0);
      assert.deepEqual(json(h.stdout.text).data, { applied: false, webhook: '' });
    } finally {
      await h.cleanup();
    }
  });

  it('set-tags strips # and refuses a fourth tag', async () => {
    const { driver, calls } = fakeDriver();
    const h = await harness({ driver });
    try {
      assert.equal(await h.run(['set-tags', '#gpu', 'llm', '--json']), 0);
      assert.deepEqual(calls.find((c) => c.method === 'setTags')?.args, [['gpu', 'llm']]);
      assert.equal(await h.run(['set-tags', 'a', 'b', 'c', 'd', '--json']), 2);
    } finally {
      await h.cleanup();
    }
  });

  it('ping sends ping-<i> to port 7 on a new stream each time', async () => {
    const { driver, calls } = fakeDriver();
    const h = await harness({ driver });
    try {
      assert.equal(await h.run(['ping', '0:0000.0000.0007', '--count', '3', '--interval', '0', '--json']), 0);
      const data = json(h.stdout.text).data as {
        results: { bytes: number; seq: number; rtt_ms: number }[];
        target: string;
        timeout: boolean;
      };
      assert.equal(data.target, '0:0000.0000.0007');
      assert.equal(data.timeout, false);
      assert.deepEqual(
        data.results.map((r) => [r.seq, r.bytes]),
        [
          [0, 6],
          [1, 6],
          [2, 6],
        ],
      );
      assert.ok(data.results.every((r) => typeof r.rtt_ms === 'number'));
      assert.equal(calls.filter((c) => c.method === 'dial' && c.args[1] === 7).length, 3);
    } finally {
      await h.cleanup();
    }
  });

  it('ping reports a failed dial per seq and exits 1 when nothing came back', async () => {
    const { driver } = fakeDriver({ dial: async () => Promise.reject(new Error('dial timeout')) });
    const h = await harness({ driver });
    try {
      assert.equal(await h.run(['ping', '7', '--count', '2', '--interval', '0']), 1);
      assert.match(h.stdout.text, /seq=0 error: dial timeout/);
      assert.match(h.stdout.text, /2 sent, 0 received, 100% loss/);
    } finally {
      await h.cleanup();
    }
  });

  /** An echo that takes a few milliseconds per chunk, so that durations are measurable. */
  class SlowEcho extends EchoConn {
    override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
      setTimeout(() => {
        this.push(chunk);
        cb();
      }, 3);
    }
  }

  it('bench reports as the reference: the resolved address, whole milliseconds, MiB/s', async () => {
    const { driver } = fakeDriver({ dial: async () => new SlowEcho() });
    const h = await harness({ driver });
    try {
      assert.equal(await h.run(['bench', '7', '0.25', '--json']), 0);
      const data = json(h.stdout.text).data;
      assert.equal(data.sent_bytes, 262_144);
      assert.equal(data.recv_bytes, 262_144);
      assert.deepEqual(Object.keys(data), [
        'recv_bytes',
        'send_duration_ms',
        'send_mbps',
        'sent_bytes',
        'target',
        'total_duration_ms',
        'total_mbps',
      ]);
      assert.equal(data.target, '0:0000.0000.0007', 'the address, not the argument as typed');
      for (const [rate, ms] of [
        ['send_mbps', 'send_duration_ms'],
        ['total_mbps', 'total_duration_ms'],
      ] as const) {
        const v = data[rate] as number;
        const dur = data[ms] as number;
        assert.ok(Number.isInteger(dur) && dur >= 5, `${ms} = ${dur}`);
        // Milliseconds are truncated, the rate uses the exact duration: it lies between these.
        const lo = 262_144 / ((dur + 1) / 1000) / 1024 / 1024;
        const hi = 262_144 / (dur / 1000) / 1024 / 1024;
        assert.ok(
          v >= lo && v <= hi,
          `${rate} = ${v}: MiB/s over ${dur} ms would be ${lo.toFixed(3)}–${hi.toFixed(3)} (Mbit/s would be ${((v * 8 * 1024 * 1024) / 1e6).toFixed(1)})`,
        );
      }
    } finally {
      await h.cleanup();
    }
  });

  it("bench prints the reference's lines, with MiB/s and Mbit/s", async () => {
    const { driver } = fakeDriver({ dial: async () => new SlowEcho() });
    const h = await harness({ driver });
    try {
      assert.equal(await h.run(['bench', '7', '0.25']), 0);
      const lines = h.stdout.text.trimEnd().split('\n');
      assert.equal(lines[0], 'BENCH 7 (0:0000.0000.0007) — sending 256.0 KiB via echo port');
      assert.match(lines[1] ?? '', /^ {2}Sent: {5}256\.0 KiB in \d+(\.\d+)?m?s \(\d+\.\d MiB\/s, \d+\.\d Mbit\/s\)$/);
      assert.match(
        lines[2] ?? '',
        /^ {2}Echoed: {3}256\.0 KiB in \d+(\.\d+)?m?s \(\d+\.\d MiB\/s round-trip, \d+\.\d Mbit\/s\)$/,
      );
      const [mib, mbit] = (lines[2]?.match(/\(([\d.]+) MiB\/s round-trip, ([\d.]+) Mbit\/s/) ?? [])
        .slice(1)
        .map(Number);
      assert.ok(mib !== undefined && mbit !== undefined && Math.abs(mbit - mib * 8.388608) <= 0.1 + mbit * 0.01);
    } finally {
      await h.cleanup();
    }
  });

  it('bench gives up with a timeout when the echo never arrives', async () => {
    const sink = (): CliConn =>
      Object.assign(new Duplex({ read: () => undefined, write: (_c, _e, cb: () => void) => cb() }), { id: 1 });
    const { driver } = fakeDriver({ dial: async () => sink() });
    const h = await harness({ driver });
    try {
      assert.equal(await h.run(['bench', '7', '0.01', '--timeout', '300ms', '--json']), 1);
      assert.equal(JSON.parse(h.stderr.text).code, 'timeout');
    } finally {
      await h.cleanup();
    }
  });

  it('send writes --data and returns the first reply', async () => {
    const { driver } = fakeDriver();
    const h = await harness({ driver });
    try {
      assert.equal(await h.run(['send', '7', '1000', '--data', 'hello', '--json']), 0);
      assert.equal(
        h.stdout.text,
        '{"data":{"port":1000,"response":"hello","sent":"hello","target":"0:0000.0000.0007"},"status":"ok"}\n',
      );
      assert.equal(await h.run(['send', '7', '1000', '--json']), 2);
      assert.match(h.stderr.text, /--data is required/);
    } finally {
      await h.cleanup();
    }
  });

  it('connect refuses a terminal stdin without --message and pipes stdin otherwise', async () => {
    const { driver } = fakeDriver();
    const tty = await harness({ driver });
    try {
      assert.equal(await tty.run(['connect', '7', '--json']), 2);
      assert.match(tty.stderr.text, /standard input is a terminal/);
    } finally {
      await tty.cleanup();
    }
    const stdin = new PassThrough();
    const piped = await harness({ driver, stdin });
    try {
      stdin.end('line one\nline two\n');
      assert.equal(await piped.run(['connect', '7', '2000']), 0);
      assert.equal(piped.stdout.text, 'line one\nline two\n');
    } finally {
      await piped.cleanup();
    }
  });

  it('recv reads one message per accepted stream', async () => {
    const conn = new EchoConn(3);
    const listener: CliListener = Object.assign(
      (async function* () {
        yield conn;
      })(),
      { close: async () => undefined },
    );
    conn.end('incoming');
    const { driver } = fakeDriver({ listen: async () => listener });
    const h = await harness({ driver });
    try {
      assert.equal(await h.run(['recv', '1000', '--json']), 0);
      assert.equal(
        h.stdout.text,
        '{"data":{"messages":[{"bytes":8,"data":"incoming","port":1000,"seq":0}],"timeout":false},"status":"ok"}\n',
      );
    } finally {
      await h.cleanup();
    }
  });

  it('listen streams NDJSON without --count and stops at --timeout', async () => {
    const dg = (data: string, dstPort = 5000): CliDatagram => ({
      srcAddr: { network: 0, node: 2 },
      srcPort: 49152,
      dstPort,
      data: Buffer.from(data),
    });
    const { driver } = fakeDriver({
      datagrams: () =>
        (async function* () {
          yield dg('a');
          yield dg('other port', 6000);
          yield dg('b');
          await new Promise(() => undefined);
        })(),
    });
    const h = await harness({ driver });
    try {
      assert.equal(await h.run(['listen', '5000', '--timeout', '200ms']), 0);
      assert.equal(
        h.stdout.text,
        '{"bytes":1,"data":"a","src_addr":"0:0000.0000.0002","src_port":49152}\n{"bytes":1,"data":"b","src_addr":"0:0000.0000.0002","src_port":49152}\n',
      );
      h.stdout.text = '';
      assert.equal(await h.run(['listen', '5000', '--count', '1', '--json']), 0);
      assert.equal(json(h.stdout.text).data.timeout, false);
    } finally {
      await h.cleanup();
    }
  });

  it('lookup asks the registry directly', async () => {
    const asked: number[] = [];
    const h = await harness({
      registry: {
        lookup: async (id) => {
          asked.push(id);
          return { type: 'lookup_ok', node_id: id };
        },
        close: () => undefined,
      },
    });
    try {
      assert.equal(await h.run(['lookup', '12', '--json']), 0);
      assert.deepEqual(asked, [12]);
      assert.equal(h.stdout.text, '{"data":{"node_id":12,"type":"lookup_ok"},"status":"ok"}\n');
    } finally {
      await h.cleanup();
    }
  });

  it('without a daemon: not_running, status reports it, stop has nothing to stop, broadcast is unavailable', async () => {
    const h = await harness();
    try {
      assert.equal(await h.run(['connections', '--json']), 1);
      assert.equal(JSON.parse(h.stderr.text).code, 'not_running');
      assert.equal(await h.run(['daemon', 'status', '--check']), 1);
      assert.equal(h.stdout.text, '');
      assert.equal(await h.run(['daemon', 'status', '--json']), 0);
      assert.deepEqual(json(h.stdout.text).data, {
        local_rendezvous: 0,
        pid: 0,
        pid_file: join(h.home, 'pilot.pid'),
        responsive: false,
        running: false,
        socket: join(h.home, 'pilot.sock'),
      });
      h.stderr.text = '';
      assert.equal(await h.run(['daemon', 'stop', '--json']), 1);
      assert.equal(JSON.parse(h.stderr.text).code, 'not_running');
      h.stderr.text = '';
      assert.equal(await h.run(['broadcast', '1', 'hi', '--json']), 1);
      assert.equal(JSON.parse(h.stderr.text).code, 'unavailable');
    } finally {
      await h.cleanup();
    }
  });
});
