import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import { describe, it } from 'node:test';
import type { CliConn, CliDatagram } from '../../src/cli/context.js';
import { defaultConnectDriver } from '../../src/cli/context.js';
import type { Addr } from '../../src/protocol/address.js';
import { encodeEvent } from '../../src/protocol/eventstream.js';
import type { DialOptions } from '../../src/sdk/types.js';
import { EchoConn, fakeDriver, harness } from './cli-harness.js';

/**
 * What a new user meets: exit statuses, refusals reported as errors, help everywhere, settings
 * that match what the daemon uses.
 */

const envelope = (text: string): Record<string, unknown> => JSON.parse(text) as Record<string, unknown>;

/** The daemon's task service on port 1003 as the CLI sees it: one LOCAL request, one answer. */
class TaskServiceConn extends Duplex implements CliConn {
  readonly id = 9;
  #buf = Buffer.alloc(0);
  constructor(private readonly answer: (op: Record<string, unknown>) => unknown) {
    super();
  }
  override _read(): void {}
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.#buf = Buffer.concat([this.#buf, chunk]);
    if (this.#buf.length >= 8 && this.#buf.length >= 8 + this.#buf.readUInt32BE(4)) {
      const op = JSON.parse(this.#buf.subarray(8, 8 + this.#buf.readUInt32BE(4)).toString('utf8')) as Record<
        string,
        unknown
      >;
      const body = Buffer.from(JSON.stringify({ ok: true, data: this.answer(op) }));
      const head = Buffer.alloc(8);
      head.writeUInt32BE(256, 0);
      head.writeUInt32BE(body.length, 4);
      this.push(Buffer.concat([head, body]));
    }
    cb();
  }
  override _final(cb: (err?: Error | null) => void): void {
    this.push(null);
    cb();
  }
}

function taskDriver(answer: (op: Record<string, unknown>) => unknown): ReturnType<typeof fakeDriver> {
  return fakeDriver({
    dial: async (_addr: Addr, port: number) => {
      assert.equal(port, 1003);
      return new TaskServiceConn(answer);
    },
  });
}

/** A connection that never answers (an echo that hangs, a quiet event stream). */
const silent = (): CliConn =>
  Object.assign(new Duplex({ read: () => undefined, write: (_c, _e, cb: () => void) => cb() }), { id: 2 });

describe('task submit: a refusal is an error', () => {
  it('below the polo gate: exit 1, status error, code refused, a hint with both scores', async () => {
    const { driver } = taskDriver((op) => {
      assert.equal(op.op, 'submit');
      return {
        accepted: false,
        message: 'Polo score too low: submitter=-1, receiver=1',
        status: 400,
        target: '0:0000.0000.0007',
        task: 'x',
        task_id: 'id-1',
      };
    });
    const h = await harness({ driver });
    try {
      assert.equal(await h.run(['task', 'submit', '7', '--task', 'x', '--json']), 1);
      assert.equal(h.stdout.text, '');
      const err = envelope(h.stderr.text);
      assert.equal(err.status, 'error');
      assert.equal(err.code, 'refused');
      assert.match(String(err.message), /refused by 7: Polo score too low/);
      assert.match(String(err.hint), /your polo score is -1, the receiver's is 1/);
      assert.match(String(err.hint), /must be at least the receiver's/);
      assert.match(String(err.hint), /running tasks for others/);
      h.stderr.text = '';
      assert.equal(await h.run(['task', 'submit', '7', '--task', 'x']), 1);
      assert.match(h.stderr.text, /^error: task refused by 7: .*\nhint: your polo score is -1/);
    } finally {
      await h.cleanup();
    }
  });

  it('accepted: exit 0 and the reference payload', async () => {
    const { driver } = taskDriver(() => ({
      accepted: true,
      message: 'Task received with status NEW',
      status: 200,
      target: '0:0000.0000.0007',
      task: 'x',
      task_id: 'id-2',
    }));
    const h = await harness({ driver });
    try {
      assert.equal(await h.run(['task', 'submit', '7', '--task', 'x', '--json']), 0);
      assert.equal(envelope(h.stdout.text).status, 'ok');
    } finally {
      await h.cleanup();
    }
  });
});

describe("task list: the reference's status names on both sides", () => {
  it("a submitted task whose results arrived reads SUCCEEDED, like the executor's copy", async () => {
    const task = (category: string, status: string): Record<string, string> => ({
      category,
      created_at: '2026-01-01T00:00:00Z',
      description: 'd',
      from: 'a',
      status,
      task_id: `${category}-1`,
      to: 'b',
    });
    const { driver } = taskDriver(() => ({ tasks: [task('submitted', 'COMPLETED'), task('received', 'SUCCEEDED')] }));
    const h = await harness({ driver });
    try {
      assert.equal(await h.run(['task', 'list', '--json']), 0);
      const tasks = (envelope(h.stdout.text).data as { tasks: { status: string }[] }).tasks;
      assert.deepEqual(
        tasks.map((t) => t.status),
        ['SUCCEEDED', 'SUCCEEDED'],
      );
      h.stdout.text = '';
      assert.equal(await h.run(['task', 'list']), 0);
      assert.doesNotMatch(h.stdout.text, /COMPLETED/);
    } finally {
      await h.cleanup();
    }
  });
});

describe('disconnect', () => {
  it('an id the daemon does not have is not_found, and nothing is closed', async () => {
    const { driver, calls } = fakeDriver({ info: async () => ({ conn_list: [{ id: 3, state: 'ESTABLISHED' }] }) });
    const h = await harness({ driver });
    try {
      assert.equal(await h.run(['disconnect', '9999', '--json']), 1);
      const err = envelope(h.stderr.text);
      assert.equal(err.code, 'not_found');
      assert.match(String(err.message), /no connection 9999/);
      assert.equal(calls.filter((c) => c.method === 'disconnect').length, 0);
      assert.equal(await h.run(['disconnect', '3', '--json']), 0);
      assert.deepEqual(calls.find((c) => c.method === 'disconnect')?.args, [3]);
    } finally {
      await h.cleanup();
    }
  });
});

describe('exit statuses: 0 success, 1 failure, 2 usage, 130 Ctrl-C', () => {
  it('usage errors exit 2 with and without --json', async () => {
    const h = await harness({ driver: fakeDriver().driver });
    try {
      for (const argv of [
        ['ping'],
        ['ping', '7', '--bogus'],
        ['ping', '7', '--count', 'x'],
        ['frobnicate'],
        ['send', '7', '1000'],
        ['task', 'nosuch'],
        ['daemon'],
      ]) {
        h.stderr.text = '';
        assert.equal(await h.run(argv), 2, argv.join(' '));
        assert.match(h.stderr.text, /^error: /, argv.join(' '));
        h.stderr.text = '';
        assert.equal(await h.run([...argv, '--json']), 2, `${argv.join(' ')} --json`);
        assert.equal(envelope(h.stderr.text).code, 'invalid_argument');
      }
    } finally {
      await h.cleanup();
    }
  });

  it('ping where every probe failed is status error, exit 1, after the statistics', async () => {
    const { driver } = fakeDriver({ dial: async () => Promise.reject(new Error('no route')) });
    const h = await harness({ driver });
    try {
      assert.equal(await h.run(['ping', '7', '--count', '2', '--interval', '0', '--json']), 1);
      assert.equal(h.stdout.text, '', 'nothing on stdout with --json');
      const err = envelope(h.stderr.text);
      assert.equal(err.status, 'error');
      assert.match(String(err.message), /no reply from 7: 2 sent, 0 received \(last error: no route\)/);
      h.stderr.text = '';
      assert.equal(await h.run(['ping', '7', '--count', '2', '--interval', '0']), 1);
      assert.match(h.stdout.text, /2 sent, 0 received, 100% loss/);
      assert.match(h.stderr.text, /^error: no reply from 7/);
    } finally {
      await h.cleanup();
    }
  });

  it('listen --count and subscribe --count that time out short are failures', async () => {
    const dg: CliDatagram = { srcAddr: { network: 0, node: 2 }, srcPort: 1, dstPort: 5000, data: Buffer.from('one') };
    const events = new Duplex({ read: () => undefined, write: (_c, _e, cb: () => void) => cb() });
    const { driver } = fakeDriver({
      datagrams: () =>
        (async function* () {
          yield dg;
          await new Promise(() => undefined);
        })(),
      dial: async (_a: Addr, port: number, _o?: DialOptions) => {
        assert.equal(port, 1002);
        setTimeout(
          () =>
            events.push(
              Buffer.concat([
                encodeEvent({ topic: 't', payload: Buffer.from('a') }),
                encodeEvent({ topic: 't', payload: Buffer.from('b') }),
              ]),
            ),
          10,
        );
        return Object.assign(events, { id: 4 });
      },
    });
    const h = await harness({ driver });
    try {
      assert.equal(await h.run(['listen', '5000', '--count', '2', '--timeout', '200ms', '--json']), 1);
      let err = envelope(h.stderr.text);
      assert.equal(err.code, 'timeout');
      assert.match(String(err.message), /received 1 of 2 datagrams/);
      h.stderr.text = '';
      assert.equal(await h.run(['subscribe', '7', 't', '--count', '5', '--timeout', '300ms', '--json']), 1);
      err = envelope(h.stderr.text);
      assert.equal(err.code, 'timeout');
      assert.match(String(err.message), /received 2 of 5 events/);
      h.stderr.text = '';
      assert.equal(
        await h.run(['listen', '5000', '--count', '1', '--timeout', '200ms', '--json']),
        0,
        'enough arrived',
      );
    } finally {
      await h.cleanup();
    }
  });

  it('Ctrl-C during ping: the statistics so far, exit 130', async () => {
    const ac = new AbortController();
    let dials = 0;
    const { driver } = fakeDriver({
      dial: async (_a: Addr, _p: number, options?: DialOptions) => {
        dials++;
        if (dials === 3) setTimeout(() => ac.abort(), 20);
        const conn = dials >= 3 ? silent() : new EchoConn();
        if (options?.data !== undefined) conn.write(options.data);
        return conn;
      },
    });
    const text = await harness({ driver, interrupt: ac.signal });
    try {
      assert.equal(await text.run(['ping', '7', '--count', '10', '--interval', '0']), 130);
      assert.match(text.stdout.text, /seq=1 time=/);
      assert.match(text.stdout.text, /2 sent, 2 received, 0% loss, interrupted\nrtt min\/avg\/max = /);
      assert.equal(text.stderr.text, '');
    } finally {
      await text.cleanup();
    }
    const ac2 = new AbortController();
    dials = 0;
    const json = await harness({
      driver: fakeDriver({
        dial: async (_a: Addr, _p: number, options?: DialOptions) => {
          dials++;
          if (dials === 2) setTimeout(() => ac2.abort(), 20);
          const conn = dials >= 2 ? silent() : new EchoConn();
          if (options?.data !== undefined) conn.write(options.data);
          return conn;
        },
      }).driver,
      interrupt: ac2.signal,
    });
    try {
      assert.equal(await json.run(['ping', '7', '--count', '10', '--interval', '0', '--json']), 130);
      const data = envelope(json.stdout.text).data as { interrupted: boolean; results: unknown[] };
      assert.equal(data.interrupted, true);
      assert.equal(data.results.length, 1);
    } finally {
      await json.cleanup();
    }
  });

  it('Ctrl-C during bench: the partial result, exit 130', async () => {
    const ac = new AbortController();
    /** Echoes the first 64 KiB, then stops reading: the sender stalls until Ctrl-C. */
    class StallingEcho extends EchoConn {
      #seen = 0;
      override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
        this.#seen += chunk.length;
        if (this.#seen <= 64 * 1024) {
          this.push(chunk);
          cb();
        } else setTimeout(() => ac.abort(), 30);
      }
    }
    const { driver } = fakeDriver({ dial: async () => new StallingEcho() });
    const h = await harness({ driver, interrupt: ac.signal });
    try {
      assert.equal(await h.run(['bench', '7', '1', '--json']), 130);
      const data = envelope(h.stdout.text).data as Record<string, number | boolean>;
      assert.equal(data.interrupted, true);
      assert.ok((data.recv_bytes as number) > 0 && (data.recv_bytes as number) < 1024 * 1024, String(data.recv_bytes));
      assert.ok((data.sent_bytes as number) >= (data.recv_bytes as number));
      assert.equal(typeof data.total_mbps, 'number');
    } finally {
      await h.cleanup();
    }
  });

  it('Ctrl-C on a streaming listen exits 130; on a command that only waits, the error interrupted', async () => {
    const ac = new AbortController();
    const { driver } = fakeDriver({
      datagrams: () =>
        (async function* () {
          await new Promise(() => undefined);
        })(),
      dial: async () => silent(),
    });
    const h = await harness({ driver, interrupt: ac.signal });
    try {
      setTimeout(() => ac.abort(), 50);
      assert.equal(await h.run(['listen', '5000']), 130);
      const ac2 = new AbortController();
      const h2 = await harness({ driver, interrupt: ac2.signal });
      try {
        setTimeout(() => ac2.abort(), 50);
        assert.equal(await h2.run(['send', '7', '1000', '--data', 'x', '--timeout', '2s', '--json']), 130);
        assert.deepEqual(envelope(h2.stderr.text), { code: 'interrupted', message: 'interrupted', status: 'error' });
      } finally {
        await h2.cleanup();
      }
    } finally {
      await h.cleanup();
    }
  });
});

describe('init, config and the socket in use', () => {
  it('init writes PILOT_SOCKET, and config shows the socket the daemon uses', async () => {
    const h = await harness({ env: { PILOT_SOCKET: '/tmp/elsewhere.sock' } });
    try {
      assert.equal(await h.run(['init', '--json']), 0);
      assert.equal(JSON.parse(await readFile(join(h.home, 'config.json'), 'utf8')).socket, '/tmp/elsewhere.sock');
      assert.equal((envelope(h.stdout.text).data as { socket: string }).socket, '/tmp/elsewhere.sock');
    } finally {
      await h.cleanup();
    }
    const other = await harness({ env: { PILOT_SOCKET: '/tmp/from-env.sock' } });
    try {
      await writeFile(join(other.home, 'config.json'), '{"socket":"/tmp/pilot.sock"}');
      assert.equal(await other.run(['config', '--json']), 0);
      const data = envelope(other.stdout.text).data as { socket: string; sources: Record<string, string> };
      assert.equal(
        data.socket,
        '/tmp/from-env.sock',
        'the socket in effect, not the file value PILOT_SOCKET overrides',
      );
      assert.equal(data.sources.socket, 'PILOT_SOCKET');
    } finally {
      await other.cleanup();
    }
  });

  it('a socket file nobody listens on is called stale, not missing', async () => {
    const h = await harness();
    try {
      const path = join(h.home, 'stale.sock');
      const child = spawn(
        process.execPath,
        ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => console.log('up'))`],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
      child.kill('SIGKILL');
      await new Promise((resolve) => child.once('exit', resolve));
      assert.ok((await stat(path)).isSocket(), 'the file outlives its process');
      await assert.rejects(defaultConnectDriver(path), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'not_running');
        assert.match(err.message, /stale socket/);
        assert.doesNotMatch(err.message, /no socket at/);
        return true;
      });
      await assert.rejects(defaultConnectDriver(join(h.home, 'none.sock')), /no socket at/);
    } finally {
      await h.cleanup();
    }
  });
});

describe('daemon start: the beacon goes with the registry, flags are remembered', () => {
  it('--registry host:P without --beacon uses host:P+1, and a plain restart reuses the remembered flags', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pilotctl-fake-daemon-'));
    const argsFile = join(dir, 'argv.json');
    // Stands in for pilot-daemon: records its arguments and exits.
    const script = join(dir, 'fake-daemon.mjs');
    await writeFile(
      script,
      `import { appendFileSync } from 'node:fs';\nappendFileSync(${JSON.stringify(argsFile)}, JSON.stringify(process.argv.slice(2)) + '\\n');\n`,
    );
    const h = await harness({ scripts: { daemon: script, rendezvous: '/nonexistent' } });
    try {
      // The fake daemon exits at once, so the start fails; what matters is what it was given.
      assert.equal(
        await h.run(['daemon', 'start', '--registry', '10.9.9.9:19600', '--hostname', 'alice', '--public']),
        1,
      );
      assert.match(h.stderr.text, /exited during start-up/);
      const cfg = JSON.parse(await readFile(join(h.home, 'config.json'), 'utf8')) as Record<string, unknown>;
      assert.deepEqual(cfg, { registry: '10.9.9.9:19600', beacon: '10.9.9.9:19601', hostname: 'alice', public: true });
      assert.equal(await h.run(['daemon', 'start']), 1);
      const runs = (await readFile(argsFile, 'utf8'))
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as string[]);
      assert.equal(runs.length, 2);
      for (const argv of runs) {
        const flag = (name: string): string | undefined => argv[argv.indexOf(name) + 1];
        assert.equal(flag('-registry'), '10.9.9.9:19600');
        assert.equal(flag('-beacon'), '10.9.9.9:19601');
        assert.equal(flag('-hostname'), 'alice');
        assert.ok(argv.includes('-public'));
      }
    } finally {
      await h.cleanup();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('help everywhere', () => {
  it('-h, --help, help <group>, help <command>; unknown names suggest the nearest', async () => {
    const h = await harness();
    const run = async (argv: string[]): Promise<{ code: number; out: string; err: string }> => {
      h.stdout.text = '';
      h.stderr.text = '';
      const code = await h.run(argv);
      return { code, out: h.stdout.text, err: h.stderr.text };
    };
    try {
      for (const argv of [['-h'], ['--help'], ['help']]) {
        const r = await run(argv);
        assert.equal(r.code, 0, argv.join(' '));
        assert.match(r.out, /^usage: pilotctl/);
      }
      for (const argv of [
        ['ping', '-h'],
        ['ping', '--help'],
        ['help', 'ping'],
      ]) {
        const r = await run(argv);
        assert.equal(r.code, 0, argv.join(' '));
        assert.match(r.out, /^usage: pilotctl ping <node_id\|address\|hostname>/);
      }
      const start = await run(['daemon', 'start', '-h']);
      assert.equal(start.code, 0);
      assert.match(start.out, /^usage: pilotctl daemon start/);
      for (const argv of [
        ['task', '-h'],
        ['task', '--help'],
        ['help', 'task'],
      ]) {
        const r = await run(argv);
        assert.equal(r.code, 0, argv.join(' '));
        assert.match(r.out, /^usage: pilotctl task <subcommand>/);
        assert.match(r.out, /^ {2}submit /m);
        assert.doesNotMatch(r.out, /ping/);
      }
      const group = await run(['help', 'daemon']);
      assert.equal(group.code, 0);
      assert.match(group.out, /^usage: pilotctl daemon <subcommand>/);
      assert.match(group.out, /^ {2}start /m);
      assert.doesNotMatch(group.out, /traceroute/, 'that group only, not the whole usage');
      const nosuch = await run(['help', 'nosuch']);
      assert.equal(nosuch.code, 2);
      assert.match(nosuch.err, /^error: unknown command "nosuch"/);
      const typo = await run(['pign', '7', '--json']);
      assert.equal(typo.code, 2);
      assert.match(String(envelope(typo.err).hint), /did you mean "pilotctl ping"\?/);
      const jsonHelp = await run(['ping', '-h', '--json']);
      assert.equal(jsonHelp.code, 0);
      assert.match(String((envelope(jsonHelp.out).data as { help: string }).help), /^usage: pilotctl ping/);
      const nothing = await run(['--json']);
      assert.equal(nothing.code, 2);
      assert.equal(envelope(nothing.err).message, 'no command given');
      const subTypo = await run(['task', 'sumbit']);
      assert.equal(subTypo.code, 2);
      assert.match(subTypo.err, /did you mean "pilotctl task submit"\?/);
    } finally {
      await h.cleanup();
    }
  });

  it('version and --version', async () => {
    const h = await harness();
    try {
      assert.equal(await h.run(['version']), 0);
      assert.match(h.stdout.text, /^pilotctl \d+\.\d+\.\d+/);
      h.stdout.text = '';
      assert.equal(await h.run(['--version', '--json']), 0);
      assert.match(String((envelope(h.stdout.text).data as { version: string }).version), /^\d+\.\d+\.\d+/);
    } finally {
      await h.cleanup();
    }
  });
});

describe('datagrams: sendto; broadcast', () => {
  it('sendto sends --data as one datagram to the port', async () => {
    const { driver, calls } = fakeDriver();
    const h = await harness({ driver });
    try {
      assert.equal(await h.run(['sendto', '0:0000.0000.0007', '5000', '--data', 'hi there', '--json']), 0);
      assert.deepEqual(envelope(h.stdout.text).data, { bytes: 8, port: 5000, target: '0:0000.0000.0007' });
      const call = calls.find((c) => c.method === 'sendTo');
      assert.deepEqual(call?.args.slice(0, 2), [{ network: 0, node: 7 }, 5000]);
      assert.equal(Buffer.from(call?.args[2] as Uint8Array).toString(), 'hi there');
    } finally {
      await h.cleanup();
    }
  });

  it('broadcast is not offered by help or context, and says why it fails', async () => {
    const h = await harness();
    try {
      assert.equal(await h.run(['help']), 0);
      assert.doesNotMatch(h.stdout.text, /broadcast/);
      assert.match(h.stdout.text, /^ {2}sendto /m);
      h.stdout.text = '';
      assert.equal(await h.run(['context', '--json']), 0);
      assert.ok(!('broadcast' in (envelope(h.stdout.text).data as { commands: object }).commands));
      assert.equal(await h.run(['broadcast', '1', 'hi', '--json']), 1);
      const err = envelope(h.stderr.text);
      assert.equal(err.code, 'unavailable');
      assert.match(String(err.message), /custom networks/);
    } finally {
      await h.cleanup();
    }
  });
});
