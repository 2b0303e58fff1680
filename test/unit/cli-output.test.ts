import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { errorEnvelope, errorText, formatTable, goJson, Output, successEnvelope } from '../../src/cli/output.js';
import { PilotError } from '../../src/errors.js';
import { Collector } from './cli-harness.js';

describe('pilotctl output', () => {
  it('success envelope: data before status, payload keys sorted at every depth', () => {
    assert.equal(
      successEnvelope({ pid: 3, address: 'a', nested: { z: 1, b: [{ y: 1, x: 2 }] } }),
      '{"data":{"address":"a","nested":{"b":[{"x":2,"y":1}],"z":1},"pid":3},"status":"ok"}\n',
    );
    assert.equal(successEnvelope(null), '{"data":null,"status":"ok"}\n');
  });

  it('error envelope with and without hint', () => {
    assert.equal(
      errorEnvelope(new PilotError('not_running', 'daemon is not running', 'start it')),
      '{"code":"not_running","hint":"start it","message":"daemon is not running","status":"error"}\n',
    );
    assert.equal(errorEnvelope(new PilotError('timeout', 't')), '{"code":"timeout","message":"t","status":"error"}\n');
    assert.equal(errorText(new PilotError('timeout', 't', 'h')), 'error: t\nhint: h\n');
    assert.equal(errorText(new PilotError('timeout', 't')), 'error: t\n');
  });

  it('escapes like Go', () => {
    assert.equal(goJson({ s: '<a&b>' }), '{"s":"\\u003ca\\u0026b\\u003e"}');
  });

  it('routes results: envelope on stdout with --json, errors on stderr', () => {
    const out = new Collector();
    const err = new Collector();
    const o = new Output(out, err, true);
    o.success({ b: 1, a: 2 }, 'human');
    o.info('progress');
    o.failure(new PilotError('internal', 'boom'));
    assert.equal(out.text, '{"data":{"a":2,"b":1},"status":"ok"}\n');
    assert.equal(err.text, '{"code":"internal","message":"boom","status":"error"}\n');
  });

  it('without --json prints the text, else indented JSON, and NDJSON lines stay compact', () => {
    const out = new Collector();
    const o = new Output(out, new Collector(), false);
    o.success({ a: 1 }, 'hello');
    o.success({ b: 1, a: 2 });
    o.ndjson({ src_port: 1, bytes: 2 });
    assert.equal(out.text, 'hello\n{\n  "a": 2,\n  "b": 1\n}\n{"bytes":2,"src_port":1}\n');
  });

  it('aligns table columns', () => {
    assert.equal(
      formatTable(
        ['ID', 'NAME'],
        [
          ['1', 'alpha'],
          ['100', 'b'],
        ],
      ),
      'ID   NAME\n1    alpha\n100  b\n',
    );
  });

  it('draws a progress bar only on a terminal', () => {
    const tty = new Collector(true);
    const bar = new Output(new Collector(), tty, false).progress('bench', 100);
    bar.update(100);
    bar.finish();
    assert.match(tty.text, /bench \[#+\] 100%/);
    const pipe = new Collector(false);
    const quiet = new Output(new Collector(), pipe, false).progress('bench', 100);
    quiet.update(50);
    quiet.finish();
    assert.equal(pipe.text, '');
  });
});
