import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { TaskBook, newTask, ANSWER_TIMEOUT_MS } from '../../src/services/tasks/book.js';
import { QUEUE_HEAD_TIMEOUT_MS } from '../../src/protocol/task-evidence.js';
import { taskClock } from '../../src/config/test-clock.js';
import { encodeTaskFile, resultFilenameError, TaskDirs } from '../../src/services/tasks/files.js';

const ID = '00112233-4455-6677-8899-aabbccddeeff';

describe('task files', () => {
  it('writes the reference struct order, indented by two spaces', () => {
    const t = {
      ...newTask({ id: ID, description: 'd', from: '0:0000.0000.0001', to: '0:0000.0000.0002', now: 0 }),
      time_cpu_ms: 5,
      accepted_at: '1970-01-01T00:00:01.000Z',
    };
    const text = encodeTaskFile(t);
    assert.deepEqual(Object.keys(JSON.parse(text) as object), [
      'task_id',
      'task_description',
      'created_at',
      'status',
      'status_justification',
      'from',
      'to',
      'accepted_at',
      'time_cpu_ms',
    ]);
    assert.match(text, /^\{\n {2}"task_id": /);
  });

  it('allows plain result names with listed extensions only', () => {
    for (const ok of ['report.md', 'model.SAFETENSORS', 'a b.csv'])
      assert.equal(resultFilenameError(ok), undefined, ok);
    for (const bad of ['run.sh', 'x.py', '../a.txt', 'a/b.txt', 'a\\b.txt', '.env.txt', 'noext', '', 'a.txt\u0000.sh'])
      assert.notEqual(resultFilenameError(bad), undefined, bad);
  });

  it('never builds a path from an invalid id or name', async () => {
    const home = await mkdtemp(join(tmpdir(), 'tasks-'));
    try {
      const dirs = new TaskDirs(home);
      await dirs.ensure();
      await assert.rejects(
        dirs.write('received', {
          ...newTask({ id: ID, description: '', from: '', to: '', now: 0 }),
          task_id: '../../x',
        }),
      );
      await assert.rejects(dirs.writeResult(ID, '../x.txt', 'x'));
      await dirs.writeResult(ID, 'result.txt', 'hi');
      assert.deepEqual(await readdir(join(home, 'tasks', 'results')), [`${ID}_result.txt`]);
      assert.equal(await readFile(join(home, 'tasks', 'results', `${ID}_result.txt`), 'utf8'), 'hi');
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  });

  it('cancels unanswered tasks after a minute and expires the queue head after an hour from becoming head', async () => {
    const home = await mkdtemp(join(tmpdir(), 'tasks-'));
    let now = 1_000_000;
    try {
      const book = new TaskBook(new TaskDirs(home), () => now);
      await book.load();
      await book.save('received', newTask({ id: ID, description: 'x', from: 'a', to: 'b', now }));
      now += ANSWER_TIMEOUT_MS;
      assert.equal(book.unanswered().length, 0);
      now += 1;
      assert.equal(book.unanswered().length, 1);
      const id2 = '00112233-4455-6677-8899-aabbccddee00';
      await book.save('received', {
        ...newTask({ id: id2, description: 'y', from: 'a', to: 'b', now }),
        status: 'ACCEPTED',
      });
      book.enqueue(ID);
      book.enqueue(id2);
      now += QUEUE_HEAD_TIMEOUT_MS;
      assert.equal(book.expiredHead(), undefined);
      book.dequeue(ID); // executed: the next one only now becomes head
      now += QUEUE_HEAD_TIMEOUT_MS;
      assert.equal(book.expiredHead(), undefined);
      now += 1;
      assert.equal(book.expiredHead()?.task_id, id2);
      // Reloading rebuilds the queue from ACCEPTED files.
      const again = new TaskBook(new TaskDirs(home), () => now);
      await again.load();
      assert.deepEqual(again.queue, [id2]);
    } finally {
      await rm(home, { recursive: true, force: true });
    }
  });

  it('adds the offset file to the clock only when the variable is set', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'clock-'));
    try {
      const { writeFile } = await import('node:fs/promises');
      const file = join(dir, 'offset');
      await writeFile(file, '5000');
      assert.equal(taskClock(() => 1, {})(), 1);
      assert.equal(taskClock(() => 1, { PILOT_TEST_CLOCK_OFFSET_FILE: file })(), 5001);
      assert.equal(taskClock(() => 1, { PILOT_TEST_CLOCK_OFFSET_FILE: join(dir, 'missing') })(), 1);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
