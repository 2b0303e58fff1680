import assert from 'node:assert/strict';
import { appendFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { harness } from './cli-harness.js';

const entry = (msg: string, extra: Record<string, unknown> = {}): string =>
  `${JSON.stringify({ level: 30, time: Date.UTC(2026, 11, 2), pid: 1, name: 'daemon', msg, ...extra })}\n`;

describe('pilotctl logs', () => {
  it('shows the last lines of pilot.log, JSON entries as readable lines', async () => {
    const h = await harness();
    try {
      await writeFile(join(h.home, 'pilot.log'), entry('one') + entry('two', { node: 2 }) + entry('three'));
      assert.equal(await h.run(['logs', '--lines', '2']), 0);
      assert.equal(
        h.stdout.text,
        '2026-12-02T00:00:00.000Z INFO daemon: two node=2\n2026-12-02T00:00:00.000Z INFO daemon: three\n',
      );
      const j = await harness();
      await writeFile(join(j.home, 'pilot.log'), entry('one'));
      assert.equal(await j.run(['--json', 'logs']), 0);
      const data = (JSON.parse(j.stdout.text) as { data: { entries: { msg: string }[] } }).data;
      assert.deepEqual(
        data.entries.map((e) => e.msg),
        ['one'],
      );
      await j.cleanup();
    } finally {
      await h.cleanup();
    }
  });

  it('says where it looked when there is no log', async () => {
    const h = await harness();
    try {
      assert.equal(await h.run(['logs']), 1);
      assert.match(h.stderr.text, /no log at .*pilot\.log/);
    } finally {
      await h.cleanup();
    }
  });

  it('-f follows what the daemon appends until Ctrl-C', async () => {
    const stop = new AbortController();
    const h = await harness({ interrupt: stop.signal });
    try {
      const log = join(h.home, 'pilot.log');
      await writeFile(log, entry('before'));
      const run = h.run(['logs', '-f']);
      await sleep(300);
      await appendFile(log, entry('after'));
      await sleep(500);
      stop.abort();
      assert.equal(await run, 130);
      assert.match(h.stdout.text, /daemon: before\n.*daemon: after\n/);
    } finally {
      await h.cleanup();
    }
  });
});
