import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  boolFlag,
  checkFlags,
  countFlag,
  durationFlag,
  extractJsonFlag,
  parseArgs,
  parseDirectTarget,
  parseNodeId,
  parsePort,
  validateHostPort,
  validateHostname,
  validateTags,
  validateWebhookUrl,
} from '../../src/cli/args.js';
import { PilotError } from '../../src/errors.js';

function rejects(fn: () => unknown, pattern: RegExp): void {
  assert.throws(
    fn,
    (err: unknown) => err instanceof PilotError && err.code === 'invalid_argument' && pattern.test(err.message),
  );
}

describe('pilotctl argument parsing', () => {
  it('takes --json out from anywhere', () => {
    assert.deepEqual(extractJsonFlag(['ping', '--json', 'x']), { json: true, rest: ['ping', 'x'] });
    assert.deepEqual(extractJsonFlag(['info']), { json: false, rest: ['info'] });
    assert.deepEqual(extractJsonFlag(['--json', 'info', '--json']).rest, ['info']);
  });

  it('reads --k=v, --k v and a lone --k as "true"', () => {
    const a = parseArgs(['host', '--count=3', '--timeout', '5s', '--public', '--data', '--x', 'tail']);
    assert.equal(a.flags.get('count'), '3');
    assert.equal(a.flags.get('timeout'), '5s');
    assert.equal(a.flags.get('public'), 'true');
    assert.equal(a.flags.get('data'), 'true');
    assert.equal(a.flags.get('x'), 'tail');
    assert.deepEqual(a.positionals, ['host']);
  });

  it('lets a flag consume the next token, as the reference does', () => {
    const a = parseArgs(['--public', '1000']);
    assert.equal(a.flags.get('public'), '1000');
    assert.deepEqual(a.positionals, []);
  });

  it('keeps single-dash tokens and values with = as positionals or values', () => {
    const a = parseArgs(['-5', '--set', 'k=v=w', '--']);
    assert.deepEqual(a.positionals, ['-5', '--']);
    assert.equal(a.flags.get('set'), 'k=v=w');
  });

  it('refuses unknown flags and names the accepted ones', () => {
    assert.throws(
      () => checkFlags('ping', parseArgs(['--cout', '3']), { count: 'string' }),
      (err: unknown) =>
        err instanceof PilotError && /unknown flag --cout/.test(err.message) && err.hint === 'accepted flags: --count',
    );
  });

  it('treats true, 1 and empty as true for boolean flags and refuses garbage', () => {
    assert.equal(boolFlag(parseArgs(['--check']), 'check'), true);
    assert.equal(boolFlag(parseArgs(['--check=1']), 'check'), true);
    assert.equal(boolFlag(parseArgs(['--check=']), 'check'), true);
    assert.equal(boolFlag(parseArgs(['--check=false']), 'check'), false);
    assert.equal(boolFlag(parseArgs([]), 'check'), false);
    rejects(() => boolFlag(parseArgs(['--public', 'yes']), 'public'), /--public/);
  });
});

describe('pilotctl validators', () => {
  it('ports are 0-65535', () => {
    assert.equal(parsePort('0'), 0);
    assert.equal(parsePort('65535'), 65535);
    rejects(() => parsePort('65536'), /0 to 65535/);
    rejects(() => parsePort('-1'), /port/);
    rejects(() => parsePort('80a'), /port/);
  });

  it('node ids are u32 or address texts', () => {
    assert.equal(parseNodeId('42'), 42);
    assert.equal(parseNodeId('4294967295'), 0xffffffff);
    assert.equal(parseNodeId('0:0000.0001.0002'), 0x10002);
    rejects(() => parseNodeId('4294967296'), /invalid node id/);
    rejects(() => parseNodeId('bob'), /invalid node id/);
  });

  it('counts and durations', () => {
    assert.equal(countFlag(parseArgs([]), 'count', 4), 4);
    assert.equal(countFlag(parseArgs(['--count', '2']), 'count', 4), 2);
    rejects(() => countFlag(parseArgs(['--count', '0']), 'count', 4), /--count "0"/);
    assert.equal(countFlag(parseArgs(['--count', '0']), 'count', 4, { min: 0 }), 0);
    rejects(() => countFlag(parseArgs(['--count', 'x']), 'count', 4), /whole number/);
    assert.equal(durationFlag(parseArgs(['--timeout', '30s']), 'timeout', 1), 30_000);
    assert.equal(durationFlag(parseArgs(['--timeout', '1m30s']), 'timeout', 1), 90_000);
    assert.equal(durationFlag(parseArgs(['--timeout', '250ms']), 'timeout', 1), 250);
    assert.equal(durationFlag(parseArgs(['--timeout', '2']), 'timeout', 1), 2000);
    assert.equal(durationFlag(parseArgs([]), 'timeout', 7), 7);
    rejects(() => durationFlag(parseArgs(['--timeout', '0s']), 'timeout', 1), /duration/);
    rejects(() => durationFlag(parseArgs(['--timeout', 'soon']), 'timeout', 1), /--timeout "soon"/);
    assert.equal(durationFlag(parseArgs(['--timeout', '0']), 'timeout', 1, { allowZero: true }), 0);
  });

  it('hostnames follow the registry rule', () => {
    assert.equal(validateHostname('agent-1'), 'agent-1');
    rejects(() => validateHostname('Agent'), /invalid hostname/);
    rejects(() => validateHostname('-a'), /invalid hostname/);
    rejects(() => validateHostname('a'.repeat(64)), /invalid hostname/);
    rejects(() => validateHostname('localhost'), /reserved/);
  });

  it('tags: at most three, # stripped, registry pattern', () => {
    assert.deepEqual(validateTags(['#gpu', 'llm']), ['gpu', 'llm']);
    rejects(() => validateTags(['a', 'b', 'c', 'd']), /at most 3/);
    rejects(() => validateTags(['Bad_Tag']), /invalid tag/);
    rejects(() => validateTags([]), /no tags/);
  });

  it('webhook URLs must be http or https', () => {
    assert.equal(validateWebhookUrl('https://example.com/hook'), 'https://example.com/hook');
    assert.equal(validateWebhookUrl('http://127.0.0.1:8080/x'), 'http://127.0.0.1:8080/x');
    rejects(() => validateWebhookUrl('ftp://example.com'), /http/);
    rejects(() => validateWebhookUrl('example.com/hook'), /invalid webhook URL/);
  });

  it('host:port addresses', () => {
    assert.equal(validateHostPort('127.0.0.1:9000', 'registry'), '127.0.0.1:9000');
    assert.equal(validateHostPort('[::1]:9000', 'registry'), '[::1]:9000');
    assert.equal(validateHostPort(':0', 'listen', { allowEmptyHost: true }), ':0');
    rejects(() => validateHostPort('127.0.0.1', 'registry'), /host:port/);
    rejects(() => validateHostPort('h:70000', 'registry'), /host:port/);
    rejects(() => validateHostPort(':9000', 'registry'), /host:port/);
  });

  it('targets: node id, address, or left for hostname resolution', () => {
    assert.deepEqual(parseDirectTarget('7'), { network: 0, node: 7 });
    assert.deepEqual(parseDirectTarget('0:0000.0000.0002'), { network: 0, node: 2 });
    assert.equal(parseDirectTarget('bob'), undefined);
    rejects(() => parseDirectTarget('1:0000.0000.0002'), /network mismatch/);
  });
});
