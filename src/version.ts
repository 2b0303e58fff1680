import { readFileSync } from 'node:fs';

/** The package version, read from package.json (src/ and dist/ both sit one level below it). */
export function packageVersion(): string {
  try {
    const pkg: unknown = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
    const version = typeof pkg === 'object' && pkg !== null ? (pkg as { version?: unknown }).version : undefined;
    return typeof version === 'string' ? version : 'unknown';
  } catch {
    return 'unknown';
  }
}

/** What `-version` prints for one of the executables. */
export const versionLine = (executable: string): string =>
  `${executable} ${packageVersion()} (pilot-ts, node ${process.version})`;
