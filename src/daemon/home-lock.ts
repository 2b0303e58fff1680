import { mkdir, open, readFile, unlink } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { PilotError } from '../errors.js';
import { isAlive } from '../process-alive.js';

/** Identities held by nodes of this process (a second one in the same process is refused too). */
const heldHere = new Set<string>();

async function holder(path: string): Promise<number | undefined> {
  const text = await readFile(path, 'utf8').catch(() => '');
  return /^\d+\s*$/.test(text) && Number(text) > 0 ? Number(text) : undefined;
}

function inUse(identity: string, pid: number | 'this process'): PilotError {
  const who = pid === 'this process' ? 'another node of this process' : `process ${pid}`;
  return new PilotError(
    'already_exists',
    `the identity ${identity} is in use by a running pilot node (${who}): a daemon or an embedded node already runs on this home`,
    'stop it first (pilotctl daemon stop, or close() the embedded node), or give this node another home',
  );
}

/**
 * One running node per identity: a daemon and an embedded node alike take `<identity>.lock`
 * (holding the owner's pid) before they start, and give it back when they stop. A lock whose
 * process is gone (killed, crashed) is taken over.
 */
export class HomeLock {
  private released = false;

  private constructor(readonly path: string) {}

  static async acquire(identityPath: string): Promise<HomeLock> {
    const identity = resolve(identityPath);
    const path = `${identity}.lock`;
    if (heldHere.has(path)) throw inUse(identity, 'this process');
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const file = await open(path, 'wx', 0o600);
        try {
          await file.writeFile(`${process.pid}\n`);
        } finally {
          await file.close();
        }
        heldHere.add(path);
        return new HomeLock(path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const pid = await holder(path);
      if (pid !== undefined && pid !== process.pid && isAlive(pid)) throw inUse(identity, pid);
      // Left by a process that is gone (or by an earlier node of this one that never stopped).
      await unlink(path).catch(() => undefined);
    }
    throw inUse(identity, (await holder(path)) ?? 0);
  }

  /** The pid of the live process holding the identity's lock, if any. */
  static async liveHolder(identityPath: string): Promise<number | undefined> {
    const pid = await holder(`${resolve(identityPath)}.lock`);
    return pid !== undefined && isAlive(pid) ? pid : undefined;
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    heldHere.delete(this.path);
    if ((await holder(this.path)) === process.pid) await unlink(this.path).catch(() => undefined);
  }
}
