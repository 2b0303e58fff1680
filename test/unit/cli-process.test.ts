import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../src/bin/pilotctl.ts', import.meta.url));

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

let home = '';

function pilotctl(args: readonly string[], extraEnv: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', BIN, ...args],
      {
        env: { ...process.env, PILOT_HOME: home, PILOT_SOCKET: join(home, 'pilot.sock'), ...extraEnv },
        timeout: 10_000,
      },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

describe('pilotctl executable', () => {
  before(async () => {
    home = await mkdtemp(join(tmpdir(), 'pilotctl-bin-'));
  });
  after(async () => {
    await rm(home, { recursive: true, force: true });
  });

  it('usage and exit codes', async () => {
    const [none, unknown, unknownJson, help, group] = await Promise.all([
      pilotctl([]),
      pilotctl(['frobnicate']),
      pilotctl(['frobnicate', '--json']),
      pilotctl(['help']),
      pilotctl(['daemon', '--json']),
    ]);
    assert.equal(none.code, 2);
    assert.equal(none.stdout, '');
    assert.match(none.stderr, /^usage: pilotctl/);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command "frobnicate"[\s\S]*usage: pilotctl/);
    assert.equal(unknownJson.code, 2, 'a usage error, with --json too');
    assert.equal(unknownJson.stdout, '');
    assert.deepEqual(JSON.parse(unknownJson.stderr), {
      code: 'invalid_argument',
      hint: 'run "pilotctl help" for the list of commands',
      message: 'unknown command "frobnicate"',
      status: 'error',
    });
    assert.equal(help.code, 0);
    assert.match(help.stdout, /daemon start/);
    assert.equal(group.code, 2);
    assert.match(JSON.parse(group.stderr).hint, /start, stop, status/);
  });

  it('info without a daemon: exit 1 and a not_running envelope on stderr, --json anywhere', async () => {
    const [after, before, text] = await Promise.all([
      pilotctl(['info', '--json']),
      pilotctl(['--json', 'info']),
      pilotctl(['info']),
    ]);
    for (const r of [after, before]) {
      assert.equal(r.code, 1);
      assert.equal(r.stdout, '');
      assert.equal(r.stderr.split('\n').length, 2, 'one line');
      const env = JSON.parse(r.stderr);
      assert.equal(env.code, 'not_running');
      assert.equal(env.status, 'error');
      assert.deepEqual(Object.keys(env), ['code', 'hint', 'message', 'status']);
    }
    assert.equal(text.code, 1);
    assert.match(text.stderr, /^error: daemon is not running .*\nhint: start it with: pilotctl daemon start\n$/);
  });

  it('init then config, through the executable', async () => {
    const init = await pilotctl(['init', '--hostname', 'node-a', '--json']);
    assert.equal(init.code, 0, init.stderr);
    assert.equal(JSON.parse(init.stdout).data.hostname, 'node-a');
    assert.equal(JSON.parse(await readFile(join(home, 'config.json'), 'utf8')).hostname, 'node-a');
    const [cfg, status, bad] = await Promise.all([
      pilotctl(['config', '--json']),
      pilotctl(['daemon', 'status', '--check']),
      pilotctl(['ping', 'node-a', '--count', 'many', '--json']),
    ]);
    assert.equal(JSON.parse(cfg.stdout).data.config_path, join(home, 'config.json'));
    assert.equal(status.code, 1);
    assert.equal(status.stdout + status.stderr, '');
    assert.equal(bad.code, 2);
    assert.match(JSON.parse(bad.stderr).message, /invalid --count "many"/);
  });
});
