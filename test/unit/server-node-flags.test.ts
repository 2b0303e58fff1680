import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { SERVER_NODE_FLAGS } from '../../src/config/node-flags.js';

const SERVERS = ['pilot-daemon', 'pilot-registry', 'pilot-beacon', 'pilot-rendezvous'];

/**
 * After a full collection, holds `mib` MiB of arrays across a few young collections (so they are
 * promoted), drops them, twice, and prints how many full collections that started.
 */
const PROMOTE_AND_DROP = `
import { PerformanceObserver, constants } from 'node:perf_hooks';
let majors = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) if (e.detail.kind === constants.NODE_PERFORMANCE_GC_MAJOR) majors++;
}).observe({ entryTypes: ['gc'] });
const tick = (ms) => new Promise((r) => setTimeout(r, ms));
globalThis.gc();
await tick(20);
majors = 0;
for (let round = 0; round < 2; round++) {
  let held = [];
  for (let i = 0; i < Number(process.argv[1]) * 256; i++) held.push(new Array(512).fill(i));
  await tick(10);
  held = null;
}
await tick(50);
console.log(majors);
`;

function fullCollections(flags: readonly string[], mib: number): number {
  const run = spawnSync(
    process.execPath,
    [...flags, '--expose-gc', '--input-type=module', '-e', PROMOTE_AND_DROP, String(mib)],
    { encoding: 'utf8', timeout: 30_000 },
  );
  assert.equal(run.status, 0, run.stderr);
  return Number.parseInt(run.stdout, 10);
}

describe('the servers’ node flags', () => {
  it('are what each server executable’s #! line passes', async () => {
    for (const name of SERVERS) {
      const source = await readFile(new URL(`../../src/bin/${name}.ts`, import.meta.url), 'utf8');
      assert.equal(source.split('\n')[0], `#!/usr/bin/env -S node ${SERVER_NODE_FLAGS.join(' ')}`, name);
    }
  });

  it('let a node promote 20 MiB after a full collection without starting another', () => {
    // Without the old-space floor V8 starts a full marking about one young generation above the
    // live heap: the segments a bulk transfer holds until acknowledged reached it every ~10 MiB.
    const plain = SERVER_NODE_FLAGS.filter((f) => !f.startsWith('--initial-old-space-size'));
    assert.ok(fullCollections(plain, 10) >= 1, 'the probe promotes enough to start a full collection without the flag');
    assert.equal(fullCollections(SERVER_NODE_FLAGS, 10), 0);
  });
});
