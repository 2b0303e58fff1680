import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PilotError } from '../../src/errors.js';
import { silentLogger, type Logger } from '../../src/log.js';
import type { JsonObject } from '../../src/protocol/json.js';
import { RegistryKeys, registryKeyFetch } from '../../src/registry-keys.js';

function recordingLogger(lines: string[]): Logger {
  const log = silentLogger();
  log.warn = ((_obj: unknown, msg?: string) => void lines.push(`warn ${msg ?? ''}`)) as Logger['warn'];
  log.info = ((_obj: unknown, msg?: string) => void lines.push(`info ${msg ?? ''}`)) as Logger['info'];
  return log;
}

describe('registry keys', () => {
  it('tells an unknown node from an unreachable registry', async () => {
    const key = Buffer.alloc(32, 7).toString('base64');
    let down = false;
    const registry = {
      lookup: async (nodeId: number): Promise<JsonObject> => {
        if (down) throw new PilotError('connection_failed', 'cannot reach the registry');
        if (nodeId === 1) return { node_id: 1, public_key: key };
        if (nodeId === 2) throw new PilotError('not_found', 'node 2 is not registered');
        throw new PilotError('refused', 'registry: node not found');
      },
    };
    const fetch = registryKeyFetch(registry);
    assert.deepEqual(await fetch(1), new Uint8Array(Buffer.from(key, 'base64')));
    assert.equal(await fetch(2), undefined);
    assert.equal(await fetch(3), undefined, 'a Go registry refuses with a bare error');
    down = true;
    await assert.rejects(fetch(1), /cannot reach/);
  });

  it('logs an outage once, does not remember it, and logs the recovery', async () => {
    const lines: string[] = [];
    let down = true;
    let calls = 0;
    const keys = new RegistryKeys(
      async () => {
        calls += 1;
        if (down) throw new PilotError('timeout', 'registry did not answer');
        return new Uint8Array(32).fill(1);
      },
      { log: recordingLogger(lines) },
    );
    assert.equal((await keys.get(1)).status, 'unreachable');
    assert.equal((await keys.get(2)).status, 'unreachable');
    assert.equal((await keys.get(1)).status, 'unreachable');
    assert.equal(calls, 3, 'an outage is asked about again, not cached as "no key"');
    assert.equal(keys.size, 0);
    assert.deepEqual(lines, ['warn registry unreachable: node keys cannot be checked']);
    down = false;
    assert.equal((await keys.get(1)).status, 'ok');
    assert.equal(lines.length, 2);
    assert.match(lines[1] ?? '', /^info registry reachable again/);
  });

  it('keeps a known key through an outage', async () => {
    let down = false;
    let now = 0;
    const keys = new RegistryKeys(
      async () => {
        if (down) throw new Error('down');
        return new Uint8Array(32).fill(3);
      },
      { now: () => now },
    );
    assert.equal((await keys.get(9)).status, 'ok');
    down = true;
    now = 5000;
    assert.equal((await keys.get(9, true)).status, 'unreachable');
    assert.equal((await keys.get(9)).status, 'ok');
  });
});
