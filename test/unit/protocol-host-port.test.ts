import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { joinHostPort, splitHostPort, unmapIpv4 } from '../../src/protocol/host-port.js';

describe('host:port text', () => {
  it('splits the forms Go accepts', () => {
    assert.deepEqual(splitHostPort('127.0.0.1:9000'), { host: '127.0.0.1', port: 9000 });
    assert.deepEqual(splitHostPort('[::1]:9000'), { host: '::1', port: 9000 });
    assert.deepEqual(splitHostPort(':0'), { host: '', port: 0 });
    assert.deepEqual(splitHostPort('registry.example:65535'), { host: 'registry.example', port: 65535 });
  });

  it('refuses what Go refuses', () => {
    for (const bad of ['host', 'host:70000', 'host:', 'host:-1', 'host:1x', '::1:9000', '[::1]9000', '[::1', '1:2:3'])
      assert.equal(splitHostPort(bad), undefined, bad);
  });

  it('joins with brackets around IPv6 literals, and round-trips', () => {
    assert.equal(joinHostPort('::1', 9), '[::1]:9');
    assert.equal(joinHostPort('10.0.0.1', 9), '10.0.0.1:9');
    for (const text of ['10.0.0.1:4000', '[fe80::1]:9', ':0']) {
      const parts = splitHostPort(text);
      assert.ok(parts);
      assert.equal(joinHostPort(parts.host, parts.port), text);
    }
  });

  it('shows IPv4-mapped addresses as IPv4', () => {
    assert.equal(unmapIpv4('::ffff:127.0.0.1'), '127.0.0.1');
    assert.equal(unmapIpv4('::FFFF:10.0.0.1'), '10.0.0.1');
    assert.equal(unmapIpv4('::1'), '::1');
  });
});
