import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { isAtomicTempName, removeStaleTemps, writeFileAtomic } from '../../src/crypto/atomic-file.js';
import { LEFTOVER_AGE_MS, Outbox } from '../../src/services/dataexchange/outbox.js';
import { ServiceState } from '../../src/services/dataexchange/state.js';
import { DataStore } from '../../src/services/dataexchange/store.js';
import { TaskDirs } from '../../src/services/tasks/files.js';

/** Temp files an interrupted writeFileAtomic leaves, and what each directory's owner removes at start-up. */

const homes: string[] = [];
after(async () => {
  for (const h of homes) await rm(h, { recursive: true, force: true });
});

async function home(): Promise<string> {
  const h = await mkdtemp(join(tmpdir(), 'leftovers-'));
  homes.push(h);
  return h;
}

async function put(path: string, content = '', ageMs = 0): Promise<void> {
  await mkdir(join(path, '..'), { recursive: true });
  await writeFile(path, content);
  if (ageMs > 0) {
    const t = new Date(Date.now() - ageMs);
    await utimes(path, t, t);
  }
}

const ID = '00112233-4455-6677-8899-aabbccddeeff';

describe('temp files of writeFileAtomic', () => {
  it('names: only `.<name>.<12 hex>.tmp`', () => {
    for (const yes of ['.a.json.0123456789ab.tmp', `.${ID}.json.ffffffffffff.tmp`, '.report v2.pdf.000000000000.tmp'])
      assert.equal(isAtomicTempName(yes), true, yes);
    for (const no of [
      'a.json.0123456789ab.tmp',
      '.a.json.0123456789a.tmp',
      '.a.json.0123456789AB.tmp',
      '.a.0123456789ab.tmp.json',
      'notes.tmp',
      '.tmp',
      `${ID}.json`,
    ]) {
      assert.equal(isAtomicTempName(no), false, no);
    }
  });

  it('leaves no temp file behind after a write, and the sweep removes only temp-named regular files', async () => {
    const dir = join(await home(), 'd');
    await mkdir(dir);
    await writeFileAtomic(join(dir, 'kept.json'), '{}');
    assert.deepEqual(await readdir(dir), ['kept.json']);
    await put(join(dir, '.kept.json.0123456789ab.tmp'), '{"half');
    await put(join(dir, '.fresh.json.0123456789ac.tmp'), '', 1000);
    await put(join(dir, 'notes.tmp'), 'user file');
    await mkdir(join(dir, '.sub.0123456789ad.tmp'));
    assert.deepEqual(await removeStaleTemps(dir, { olderThanMs: 60_000 }), []);
    assert.deepEqual((await removeStaleTemps(dir)).sort(), [
      '.fresh.json.0123456789ac.tmp',
      '.kept.json.0123456789ab.tmp',
    ]);
    assert.deepEqual((await readdir(dir)).sort(), ['.sub.0123456789ad.tmp', 'kept.json', 'notes.tmp']);
    assert.deepEqual(await removeStaleTemps(join(dir, 'missing')), []);
  });
});

describe('start-up clean-up by each directory owner', () => {
  it('data exchange: inbox/, received/ and dataexchange/ lose their temp files, never a stored item', async () => {
    const h = await home();
    await put(join(h, 'inbox', 'TEXT-20250101-101010.123-000001.json'), '{}');
    await put(join(h, 'inbox', '.TEXT-20250101-101010.124-000002.json.0123456789ab.tmp'), '{"ty');
    await put(join(h, 'received', 'empty-20250101-101010.126-000004.txt'), '');
    await put(join(h, 'received', '.photo-20250101-101010.127-000005.png.abcdef012345.tmp'), '');
    await put(join(h, 'dataexchange', 'state.json'), '{}');
    await put(join(h, 'dataexchange', '.state.json.a1b2c3d4e5f6.tmp'), '{');
    const removed = [...(await new DataStore(h).removeLeftovers()), ...(await ServiceState.removeLeftovers(h))];
    assert.equal(removed.length, 3);
    assert.deepEqual(await readdir(join(h, 'inbox')), ['TEXT-20250101-101010.123-000001.json']);
    assert.deepEqual(await readdir(join(h, 'received')), ['empty-20250101-101010.126-000004.txt']);
    assert.deepEqual(await readdir(join(h, 'dataexchange')), ['state.json']);
  });

  it('outbox: old temp files and old data without metadata go; complete items, failed/ items and recent files stay', async () => {
    const h = await home();
    const old = LEFTOVER_AGE_MS + 60_000;
    const ids = [
      '10000000-0000-4000-8000-000000000001',
      '20000000-0000-4000-8000-000000000002',
      '30000000-0000-4000-8000-000000000003',
    ];
    const [complete, orphan, recent] = ids as [string, string, string];
    await put(join(h, 'outbox', `${complete}.data`), 'x', old);
    await put(join(h, 'outbox', `${complete}.json`), '{}', old);
    await put(join(h, 'outbox', `${orphan}.data`), 'x', old);
    await put(join(h, 'outbox', `.${orphan}.json.0123456789ab.tmp`), '{', old);
    await put(join(h, 'outbox', `${recent}.data`), 'x');
    await put(join(h, 'outbox', `.${recent}.json.0123456789ac.tmp`), '{');
    await put(join(h, 'outbox', 'failed', `${orphan}.data`), 'moved aside', old);
    await put(join(h, 'outbox', 'failed', `.${orphan}.json.0123456789ad.tmp`), '');
    const removed = await new Outbox(h).removeLeftovers();
    assert.equal(removed.length, 3);
    assert.deepEqual(
      (await readdir(join(h, 'outbox'))).sort(),
      [`.${recent}.json.0123456789ac.tmp`, `${complete}.data`, `${complete}.json`, `${recent}.data`, 'failed'].sort(),
    );
    assert.deepEqual(await readdir(join(h, 'outbox', 'failed')), [`${orphan}.data`]);
  });

  it('tasks: every task directory loses its temp files, never a task file or a result', async () => {
    const h = await home();
    const dirs = new TaskDirs(h);
    await dirs.ensure();
    await put(join(dirs.dir('received'), `${ID}.json`), '{}');
    await put(join(dirs.dir('results'), `${ID}_result.txt`), 'done');
    for (const d of ['received', 'submitted', 'results', '.evidence'] as const)
      await put(join(dirs.dir(d), `.${ID}.json.0123456789ab.tmp`), '');
    assert.equal((await dirs.removeLeftovers()).length, 4);
    assert.deepEqual(await readdir(dirs.dir('received')), [`${ID}.json`]);
    assert.deepEqual(await readdir(dirs.dir('results')), [`${ID}_result.txt`]);
    assert.deepEqual(await readdir(dirs.dir('submitted')), []);
    assert.deepEqual(await readdir(dirs.dir('.evidence')), []);
  });
});
