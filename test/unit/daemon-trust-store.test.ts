import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { TrustStore } from '../../src/daemon/trust-store.js';

describe('trust.json', () => {
  it('writes the reference layout atomically with mode 0600 and reloads it', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pilot-trust-'));
    const path = join(dir, 'trust.json');
    const store = await TrustStore.open(path);
    await store.addPending({
      nodeId: 12,
      publicKey: '',
      justification: 'hello',
      receivedAt: Date.UTC(2026, 1, 15, 9, 30),
    });
    await store.trust({
      nodeId: 9,
      publicKey: 'a2V5',
      approvedAt: Date.UTC(2026, 1, 15, 10, 30),
      mutual: true,
      network: 0,
    });
    const doc = JSON.parse(await readFile(path, 'utf8')) as {
      trusted: Record<string, unknown>[];
      pending: Record<string, unknown>[];
    };
    assert.deepEqual(Object.keys(doc), ['trusted', 'pending']);
    assert.deepEqual(Object.keys(doc.trusted[0] ?? {}), ['node_id', 'public_key', 'approved_at', 'mutual']);
    assert.match(String(doc.trusted[0]?.approved_at), /^2026-02-15T\d\d:30:00(Z|[+-]\d\d:\d\d)$/);
    assert.deepEqual(Object.keys(doc.pending[0] ?? {}), ['node_id', 'justification', 'received_at']);
    assert.equal((await stat(path)).mode & 0o777, 0o600);

    const again = await TrustStore.open(path);
    assert.equal(again.isTrusted(9), true);
    assert.equal(again.getTrusted(9)?.approvedAt, Date.UTC(2026, 1, 15, 10, 30));
    assert.equal(again.getPending(12)?.justification, 'hello');

    assert.equal(await again.remove(9), true);
    assert.equal(await again.removePending(12), true);
    assert.deepEqual(JSON.parse(await readFile(path, 'utf8')), { trusted: null });
    await rm(dir, { recursive: true });
  });

  it('survives a damaged file without trusting anyone', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pilot-trust-'));
    const path = join(dir, 'trust.json');
    await writeFile(path, '{"trusted": [ {"node_id": "x"}, {"node_id": 5} ');
    const store = await TrustStore.open(path);
    assert.deepEqual(store.listTrusted(), []);
    await writeFile(path, '{"trusted":[{"node_id":-1},{"node_id":5,"mutual":true}]}');
    const partial = await TrustStore.open(path);
    assert.deepEqual(
      partial.listTrusted().map((t) => t.nodeId),
      [5],
    );
    await rm(dir, { recursive: true });
  });
});
