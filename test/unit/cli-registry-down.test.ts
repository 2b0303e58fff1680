import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PilotError } from '../../src/errors.js';
import { fakeDriver, harness } from './cli-harness.js';

/** What the daemon's errors become when the registry cannot be reached (codes as over IPC). */
describe('pilotctl when the registry is down', () => {
  const unreachable = (): Promise<never> =>
    Promise.reject(
      new PilotError('connection_failed', 'resolve hostname: daemon: cannot reach the registry at 127.0.0.1:9000'),
    );

  for (const argv of [
    ['find', 'bob'],
    ['ping', 'bob', '--count', '1'],
  ]) {
    it(`${argv[0]} says the registry is unreachable, not "not found"`, async () => {
      const { driver } = fakeDriver({ resolveHostname: unreachable });
      const h = await harness({ driver });
      try {
        assert.equal(await h.run(['--json', ...argv]), 1);
        const err = JSON.parse(h.stderr.text) as { status: string; code: string; message: string; hint: string };
        assert.equal(err.code, 'connection_failed');
        assert.match(
          err.message,
          /cannot resolve hostname "bob": the registry is unreachable \(.*cannot reach the registry/,
        );
        assert.match(err.hint, /daemon status/);
      } finally {
        await h.cleanup();
      }
    });
  }

  it('an unknown hostname (or the Go registry\'s bare refusal) is still "not found"', async () => {
    for (const code of ['not_found', 'refused'] as const) {
      const { driver } = fakeDriver({
        resolveHostname: () => Promise.reject(new PilotError(code, 'registry: request failed')),
      });
      const h = await harness({ driver });
      try {
        assert.equal(await h.run(['--json', 'find', 'nobody']), 1);
        assert.equal((JSON.parse(h.stderr.text) as { code: string }).code, 'not_found');
      } finally {
        await h.cleanup();
      }
    }
  });
});
