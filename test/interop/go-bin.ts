import { existsSync } from 'node:fs';
import { join } from 'node:path';

/** Where the Go reference's binaries are ($PILOT_GO_BIN), and which of those the suite runs. */

export const GO_BINARIES = [
  'rendezvous',
  'daemon',
  'pilotctl',
  'example-echo',
  'example-client',
  'example-webserver',
  'example-httpclient',
  'example-secure',
  'example-dataexchange',
  'example-eventstream',
] as const;

export function goBinDir(): string | undefined {
  const dir = process.env.PILOT_GO_BIN;
  return dir === undefined || dir === '' ? undefined : dir;
}

export function missingGoBinaries(dir: string): string[] {
  return GO_BINARIES.filter((b) => !existsSync(join(dir, b)));
}

export function goBin(name: string): string {
  const dir = goBinDir();
  if (dir === undefined) throw new Error('PILOT_GO_BIN is not set');
  return join(dir, name);
}
