import assert from 'node:assert/strict';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { main } from '../../src/cli/main.js';
import { Output } from '../../src/cli/output.js';
import { pilotPaths } from '../../src/config/home.js';
import { harness, type Harness } from './cli-harness.js';

describe('pilotctl init and config', () => {
  it('init writes config.json indented, 0600, in a 0700 home, and reports it', async () => {
    const h = await harness();
    try {
      const home = join(h.home, 'nested');
      const code = await (await harnessAt(h, home)).run([
        'init',
        '--hostname',
        'alice',
        '--registry',
        '10.0.0.1:9000',
        '--json',
      ]);
      assert.equal(code, 0);
      const text = await readFile(join(home, 'config.json'), 'utf8');
      // The beacon goes with the registry given: its host, the next port.
      assert.equal(
        text,
        '{\n  "registry": "10.0.0.1:9000",\n  "beacon": "10.0.0.1:9001",\n  "socket": "/tmp/pilot.sock",\n  "hostname": "alice"\n}\n',
      );
      assert.equal((await stat(home)).mode & 0o777, 0o700);
      assert.equal((await stat(join(home, 'config.json'))).mode & 0o777, 0o600);
    } finally {
      await h.cleanup();
    }
  });

  it('init --json prints the envelope with sorted keys', async () => {
    const h = await harness();
    try {
      assert.equal(await h.run(['--json', 'init', '--beacon=127.0.0.1:7001']), 0);
      const cfg = join(h.home, 'config.json');
      assert.equal(
        h.stdout.text,
        `{"data":{"beacon":"127.0.0.1:7001","config_path":${JSON.stringify(cfg)},"hostname":"","registry":"127.0.0.1:9000","socket":${JSON.stringify(join(h.home, 'pilot.sock'))}},"status":"ok"}\n`,
      );
    } finally {
      await h.cleanup();
    }
  });

  it('init refuses a bad hostname without writing anything', async () => {
    const h = await harness();
    try {
      assert.equal(await h.run(['init', '--hostname', 'Not_Valid', '--json']), 2, 'a usage error');
      assert.match(
        h.stderr.text,
        /^\{"code":"invalid_argument","hint":".*","message":"invalid hostname \\"Not_Valid\\"","status":"error"\}\n$/,
      );
      await assert.rejects(stat(join(h.home, 'config.json')));
    } finally {
      await h.cleanup();
    }
  });

  it('config shows the file plus paths and defaults; --set stores strings and keeps other keys', async () => {
    const h = await harness();
    try {
      await writeFile(join(h.home, 'config.json'), '{"custom": 5}');
      assert.equal(await h.run(['config', '--set', 'registry=10.1.1.1:9000', '--json']), 0);
      assert.equal(h.stdout.text, '{"data":{"key":"registry","value":"10.1.1.1:9000"},"status":"ok"}\n');
      assert.deepEqual(JSON.parse(await readFile(join(h.home, 'config.json'), 'utf8')), {
        custom: 5,
        registry: '10.1.1.1:9000',
      });
      h.stdout.text = '';
      assert.equal(await h.run(['config', '--json']), 0);
      const data = JSON.parse(h.stdout.text).data;
      assert.equal(data.registry, '10.1.1.1:9000');
      assert.equal(data.custom, 5);
      assert.equal(data.config_path, join(h.home, 'config.json'));
      assert.equal(data.pid_file, join(h.home, 'pilot.pid'));
      assert.equal(data.log_file, join(h.home, 'pilot.log'));
      assert.equal(data.socket, join(h.home, 'pilot.sock'), 'PILOT_SOCKET fills in the socket');
    } finally {
      await h.cleanup();
    }
  });

  it('config --set validates known keys and the key=value form', async () => {
    const h = await harness();
    try {
      assert.equal(await h.run(['config', '--set', 'webhook=ftp://x', '--json']), 2);
      assert.match(h.stderr.text, /http/);
      h.stderr.text = '';
      assert.equal(await h.run(['config', '--set', 'novalue', '--json']), 2);
      assert.match(h.stderr.text, /expected key=value/);
      h.stderr.text = '';
      assert.equal(await h.run(['config', '--set', 'registry_fingerprint=abc', '--json']), 2);
      assert.match(h.stderr.text, /invalid registry_fingerprint \\"abc\\": expected the 64 hex digits/);
      assert.equal(await h.run(['config', '--set', `registry_fingerprint=${'AB:'.repeat(31)}AB`, '--json']), 0);
      assert.equal(
        h.stdout.text,
        `{"data":{"key":"registry_fingerprint","value":"${'ab'.repeat(32)}"},"status":"ok"}\n`,
        'stored normalised',
      );
    } finally {
      await h.cleanup();
    }
  });
});

describe('pilotctl context', () => {
  it('describes commands, config file, environment, error codes, flags and version', async () => {
    const h = await harness();
    try {
      assert.equal(await h.run(['context', '--json']), 0);
      const env = JSON.parse(h.stdout.text);
      assert.equal(env.status, 'ok');
      const data = env.data;
      assert.deepEqual(Object.keys(data), [
        'commands',
        'config_file',
        'environment',
        'error_codes',
        'exit_codes',
        'global_flags',
        'version',
      ]);
      for (const name of [
        'init',
        'config',
        'daemon start',
        'daemon stop',
        'daemon status',
        'ping',
        'bench',
        'listen',
        'handshake',
        'trust',
      ]) {
        const c = data.commands[name];
        assert.ok(Array.isArray(c.args), name);
        assert.equal(typeof c.description, 'string');
        assert.equal(typeof c.returns, 'string');
      }
      assert.ok('PILOT_SOCKET' in data.environment && 'PILOT_REGISTRY' in data.environment);
      for (const code of [
        'already_exists',
        'connection_failed',
        'internal',
        'invalid_argument',
        'not_found',
        'not_running',
        'timeout',
      ]) {
        assert.ok(code in data.error_codes, code);
      }
      assert.ok('--json' in data.global_flags);
      assert.match(data.version, /^\d+\.\d+\.\d+/);
    } finally {
      await h.cleanup();
    }
  });
});

/** The same harness writers with another PILOT_HOME (to check that init creates it). */
async function harnessAt(base: Harness, home: string): Promise<{ run(argv: string[]): Promise<number> }> {
  return {
    run: (argv) =>
      main(argv, (json) => ({
        env: { PILOT_HOME: home },
        paths: pilotPaths(home),
        out: new Output(base.stdout, base.stderr, json),
        stdin: process.stdin,
        connectDriver: async () => Promise.reject(new Error('unused')),
        connectRegistry: () => ({ lookup: async () => ({}), close: () => undefined }),
        scripts: { daemon: '', rendezvous: '' },
        node: { execPath: process.execPath, execArgv: [] },
        interrupt: new AbortController().signal,
      })),
  };
}
