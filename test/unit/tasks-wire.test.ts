import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { decodeSubmitResponse, encodeSubmitResponse } from '../../src/protocol/tasksubmit.js';
import { decodeTypedFrame } from '../../src/protocol/typed-frame.js';
import { FrameReader } from '../../src/services/tasks/frame-reader.js';

function header(type: number, length: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32BE(type, 0);
  b.writeUInt32BE(length, 4);
  return b;
}

describe('task frame reader', () => {
  it('knows the declared type of a frame it refuses, and can leave the connection open to answer', async () => {
    const conn = new PassThrough();
    const reader = new FrameReader(conn, { keepOpenOnError: true });
    conn.write(header(4, 16_777_217).subarray(0, 3));
    conn.write(header(4, 16_777_217).subarray(3));
    await assert.rejects(reader.next(1000), /frame length 16777217 exceeds 16777216/);
    assert.equal(reader.firstType, 4);
    assert.equal(conn.destroyed, false);
    assert.equal(conn.isPaused(), true);
  });

  it('destroys the connection on a framing error by default', async () => {
    const conn = new PassThrough();
    const reader = new FrameReader(conn);
    conn.write(header(1, 0xffffffff));
    await assert.rejects(reader.next(1000), /exceeds/);
    assert.equal(conn.destroyed, true);
  });
});

describe('SUBMIT response', () => {
  it('may carry an empty task id: the refusal of a request whose id could not be read', () => {
    const bytes = encodeSubmitResponse({
      taskId: '',
      status: 400,
      message: 'task field "task_id" is not a valid task id',
    });
    const frame = decodeTypedFrame(bytes);
    assert.ok(frame.ok);
    const decoded = decodeSubmitResponse(frame.value.value.payload);
    assert.ok(decoded.ok);
    assert.deepEqual(decoded.value, {
      taskId: '',
      status: 400,
      message: 'task field "task_id" is not a valid task id',
    });
    assert.throws(() => encodeSubmitResponse({ taskId: '../x', status: 400, message: '' }), RangeError);
  });
});
