import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { goBinDir, missingGoBinaries } from './go-bin.js';

/**
 * `npm run test:interop`: the interop suite against the Go reference's binaries in $PILOT_GO_BIN.
 * Without it, one line saying so and exit 0 (CI cannot build the Go side). Otherwise builds dist/,
 * runs test/interop/interop.test.ts (extra arguments go to `node --test`, e.g.
 * `--test-name-pattern=pubsub`; PILOT_INTEROP_REGISTRY=go|ts runs one network only) and prints the
 * summary JSON line last.
 */

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const bin = goBinDir();
if (bin === undefined) {
  process.stdout.write(
    'test:interop skipped: PILOT_GO_BIN is not set (the directory holding the Go reference binaries: rendezvous, daemon, pilotctl, example-*)\n',
  );
  process.exit(0);
}
const missing = missingGoBinaries(bin);
if (missing.length > 0) {
  process.stderr.write(`test:interop: PILOT_GO_BIN=${bin} lacks ${missing.join(', ')}\n`);
  process.exit(1);
}

const build = spawnSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'inherit' });
if (build.status !== 0) {
  process.stderr.write('test:interop: npm run build failed\n');
  process.exit(1);
}

const tmp = mkdtempSync(join(tmpdir(), 'pilot-interop-summary-'));
const summaryFile = join(tmp, 'summary.json');
const run = spawnSync(
  process.execPath,
  [
    '--import',
    'tsx',
    '--test',
    '--test-timeout=900000',
    '--test-reporter=spec',
    ...process.argv.slice(2),
    'test/interop/interop.test.ts',
  ],
  { cwd: ROOT, stdio: 'inherit', env: { ...process.env, PILOT_INTEROP_SUMMARY: summaryFile } },
);
let summary = '';
try {
  summary = readFileSync(summaryFile, 'utf8').trim();
} catch {
  summary = JSON.stringify({ interop: 'summary', error: 'the suite wrote no summary' });
}
rmSync(tmp, { recursive: true, force: true });
process.stdout.write(`${summary}\n`);
process.exit(run.status ?? 1);
