import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseGoFlagsWithConfig, parseLogFormat } from '../../src/config/go-flags.js';
import { formatTextLine } from '../../src/log.js';
import { parseDaemonArgs, type DaemonConfig } from '../../src/daemon/config.js';

const parse = (...argv: string[]): DaemonConfig => {
  const c = parseDaemonArgs(argv, {});
  assert.ok(c !== 'help' && c !== 'version');
  return c;
};

describe('pilot-daemon flags (PROTOCOL.md §10.4)', () => {
  it('takes the reference flags in single- and double-dash form, with Go durations', () => {
    const one = parse(
      '-registry',
      '127.0.0.1:9100',
      '-listen',
      ':4001',
      '-keepalive',
      '15s',
      '-no-echo',
      '-syn-rate-limit',
      '50',
    );
    const two = parse(
      '--registry=127.0.0.1:9100',
      '--listen',
      ':4001',
      '--keepalive=15s',
      '--no-echo',
      '--syn-rate-limit=50',
    );
    for (const c of [one, two]) {
      assert.equal(c.registry, '127.0.0.1:9100');
      assert.equal(c.listen, ':4001');
      assert.equal(c.keepaliveMs, 15_000);
      assert.equal(c.echo, false);
      assert.equal(c.synRateLimit, 50);
    }
  });

  it('defaults the admission limits to 100 per second, overall and per source', () => {
    const c = parse();
    assert.equal(c.synRateLimit, 100);
    assert.equal(c.synRatePerSource, 100);
    assert.equal(parse('-syn-rate-per-source', '5000').synRatePerSource, 5000);
    assert.equal(c.inboxQuotaBytes, undefined, 'unset: the service falls back to its defaults');
    const dx = parse('-inbox-quota', '1048576', '--inbox-rate=5');
    assert.equal(dx.inboxQuotaBytes, 1_048_576);
    assert.equal(dx.inboxRate, 5);
  });

  it('refuses bad values with a message naming the flag', () => {
    assert.throws(() => parse('-syn-rate-per-source', '-3'), /syn-rate-per-source/);
    assert.throws(() => parse('-registry', 'nohost'), /-registry must be host:port/);
    assert.throws(() => parse('-log-level', 'loud'), /-log-level must be one of/);
    assert.throws(() => parse('stray'), /unexpected argument: stray/);
  });

  it('-registry-tls needs a valid -registry-fingerprint, and a fingerprint needs -registry-tls', () => {
    const hex = '0f'.repeat(32);
    assert.equal(parse().registryTls, undefined);
    assert.deepEqual(parse('-registry-tls', '-registry-fingerprint', hex).registryTls, { fingerprint: hex });
    assert.deepEqual(parse('--registry-tls', `--registry-fingerprint=${hex.toUpperCase()}`).registryTls, {
      fingerprint: hex,
    });
    assert.throws(() => parse('-registry-tls'), /-registry-tls needs -registry-fingerprint/);
    assert.throws(() => parse('-registry-fingerprint', hex), /-registry-fingerprint needs -registry-tls/);
    assert.throws(
      () => parse('-registry-tls', '-registry-fingerprint', 'abc'),
      /invalid -registry-fingerprint "abc": expected the 64 hex digits/,
    );
    assert.throws(() => parse('-registry-tls=false', '-registry-fingerprint', hex), /needs -registry-tls/);
    const dir = mkdtempSync(join(tmpdir(), 'pilot-config-'));
    try {
      const file = join(dir, 'daemon.json');
      writeFileSync(file, JSON.stringify({ registry_tls: true, 'registry-fingerprint': hex }));
      assert.deepEqual(parse('-config', file).registryTls, { fingerprint: hex });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads -config JSON (dashes or underscores), and the command line wins', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pilot-config-'));
    try {
      const file = join(dir, 'daemon.json');
      writeFileSync(
        file,
        JSON.stringify({ syn_rate_per_source: 7, 'idle-timeout': '2m', hostname: 'from-file', unknown_key: 1 }),
      );
      const c = parse('-config', file, '-hostname', 'from-flag');
      assert.equal(c.synRatePerSource, 7);
      assert.equal(c.idleTimeoutMs, 120_000);
      assert.equal(c.hostname, 'from-flag');
      writeFileSync(file, '[1,2]');
      assert.throws(() => parse('-config', file), /must hold a JSON object/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('gives the registry, beacon and rendezvous the same -config files and -log-format as the reference', () => {
    const spec = {
      addr: { kind: 'string', help: '' },
      'beacon-id': { kind: 'int', help: '' },
      health: { kind: 'bool', help: '' },
      timeout: { kind: 'duration', help: '' },
      config: { kind: 'string', help: '' },
    } as const;
    const dir = mkdtempSync(join(tmpdir(), 'pilot-config-'));
    try {
      const file = join(dir, 'beacon.json');
      writeFileSync(
        file,
        JSON.stringify({ addr: ':9101', beacon_id: 7, health: true, timeout: '2s', config: 'ignored', other: [1] }),
      );
      const { flags } = parseGoFlagsWithConfig(['-config', file, '-addr', ':9202'], spec);
      assert.deepEqual(
        { ...flags, config: undefined },
        { addr: ':9202', 'beacon-id': 7, health: true, timeout: 2000, config: undefined },
      );
      writeFileSync(file, JSON.stringify({ 'beacon-id': 'seven' }));
      assert.throws(
        () => parseGoFlagsWithConfig(['-config', file], spec),
        /invalid integer value "seven" for -beacon-id/,
      );
      writeFileSync(file, JSON.stringify({ addr: { host: 'x' } }));
      assert.throws(() => parseGoFlagsWithConfig(['-config', file], spec), /addr must be a string, number or boolean/);
      assert.throws(
        () => parseGoFlagsWithConfig(['-config', join(dir, 'missing.json')], spec),
        /cannot read config file/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    assert.deepEqual([undefined, '', 'text', 'json'].map(parseLogFormat), ['json', 'json', 'text', 'json']);
    assert.throws(() => parseLogFormat('xml'), /invalid -log-format "xml"/);
    assert.throws(() => parse('-log-format', 'yaml'), /invalid -log-format/);
    assert.equal(parse('-log-format', 'text').logFormat, 'text');
    assert.equal(parse().logFormat, 'json');
  });
});

describe('text log lines (-log-format text)', () => {
  it('puts time, level, component and message first, then the fields as key=value', () => {
    const line = formatTextLine({
      level: 30,
      time: Date.UTC(2026, 11, 2, 1, 20),
      pid: 7,
      name: 'daemon',
      msg: 'daemon ready',
      node: 2,
      socket: '/tmp/a b.sock',
      peer: { id: 3 },
    });
    assert.equal(
      line,
      '2026-12-02T01:20:00.000Z INFO daemon: daemon ready node=2 socket="/tmp/a b.sock" peer={"id":3}',
    );
  });
});

describe('help and version flags of the executables', () => {
  it('take -h and --h for -help, as Go’s flag package, and -version', () => {
    assert.equal(parseDaemonArgs(['-h'], {}), 'help');
    assert.equal(parseDaemonArgs(['--help'], {}), 'help');
    assert.equal(parseDaemonArgs(['--version'], {}), 'version');
    assert.equal(parseGoFlagsWithConfig(['--h'], { help: { kind: 'bool', help: '' } }).flags.help, true);
    assert.throws(
      () => parseGoFlagsWithConfig(['-h'], {}),
      /flag provided but not defined: -h/,
      'only where -help exists',
    );
  });
});
