import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  FALLBACK_NAME,
  MAX_NAME_BYTES,
  receivedFileName,
  sanitizeFileName,
  stamp,
} from '../../src/services/dataexchange/names.js';

describe('data exchange file names', () => {
  it('keeps only a safe last path element', () => {
    assert.equal(sanitizeFileName('../../x'), 'x');
    assert.equal(sanitizeFileName('..\\..\\windows\\evil.dll'), 'evil.dll');
    assert.equal(sanitizeFileName('/etc/passwd'), 'passwd');
    assert.equal(sanitizeFileName('..'), FALLBACK_NAME);
    assert.equal(sanitizeFileName(''), FALLBACK_NAME);
    assert.equal(sanitizeFileName('dir/'), FALLBACK_NAME);
    assert.equal(sanitizeFileName('.bashrc'), 'bashrc');
    assert.equal(sanitizeFileName('a\u0000b\nc\u202e.txt'), 'abc.txt');
    assert.equal(sanitizeFileName('what?<>.txt'), 'what.txt');
    assert.equal(sanitizeFileName('trailing. '), 'trailing');
  });

  it('never yields a Windows device name', () => {
    assert.equal(sanitizeFileName('CON'), '_CON');
    assert.equal(sanitizeFileName('nul.txt'), '_nul.txt');
    assert.equal(sanitizeFileName('com1.log'), '_com1.log');
    assert.equal(sanitizeFileName('console.txt'), 'console.txt');
  });

  it('bounds the length in UTF-8 bytes and keeps the extension', () => {
    const long = `${'é'.repeat(500)}.txt`;
    const safe = sanitizeFileName(long);
    assert.ok(Buffer.byteLength(safe) <= MAX_NAME_BYTES);
    assert.ok(safe.endsWith('.txt'));
    assert.ok(!safe.includes('\uFFFD'));
  });

  it('stamps names uniquely within one millisecond', () => {
    const d = new Date(2026, 1, 15, 10, 30, 0, 123);
    assert.equal(stamp(d), '20260215-103000.123');
    assert.equal(receivedFileName('a.txt', d, 1), 'a-20260215-103000.123-000001.txt');
    assert.notEqual(receivedFileName('a.txt', d, 1), receivedFileName('a.txt', d, 2));
  });
});
