import { randomBytes } from 'node:crypto';
import { chmod, link, mkdir, open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';

export interface AtomicWriteOptions {
  /** File mode, applied exactly (not filtered by the umask). Default 0o600. */
  readonly mode?: number;
  /**
   * Fail with EEXIST instead of replacing an existing file. The new file still
   * appears atomically (hard link of the synced temp file), so a concurrent
   * writer can never be overwritten.
   */
  readonly exclusive?: boolean;
  /**
   * Makes the new directory entry durable instead of the default `fsyncDir(dirname(path))`, e.g.
   * a group commit shared by concurrent writers. It must fsync the directory after it is called.
   */
  readonly syncDir?: (dir: string) => Promise<void>;
}

/**
 * Creates `path` (and missing parents) with `mode` if it does not exist; an existing directory is
 * left as is. New directories are made durable too: each one's parent is fsynced, so a file
 * written into them and fsynced cannot vanish with its directory after a crash.
 */
export async function ensureDir(path: string, mode = 0o700): Promise<void> {
  const created = await mkdir(path, { recursive: true, mode });
  if (created === undefined) return;
  await chmod(path, mode);
  // `created` is the topmost new directory: its parent and every new level below need an fsync.
  const levels: string[] = [];
  for (let dir = resolve(path); ; dir = dirname(dir)) {
    levels.push(dirname(dir));
    if (dir === resolve(created) || dirname(dir) === dir) break;
  }
  for (const dir of levels.reverse()) await fsyncDir(dir);
}

/**
 * Writes `data` so that after a crash `path` holds either the old or the new
 * content in full: temp file in the same directory, fsync, rename, fsync of the directory.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, options: AtomicWriteOptions = {}): Promise<void> {
  const mode = options.mode ?? 0o600;
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  let tmpExists = false;
  try {
    const fh = await open(tmp, 'wx', mode);
    tmpExists = true;
    try {
      await fh.chmod(mode);
      await fh.writeFile(data);
      await fh.sync();
    } finally {
      await fh.close();
    }
    if (options.exclusive === true) {
      await link(tmp, path);
      await unlink(tmp);
    } else {
      await rename(tmp, path);
    }
    tmpExists = false;
    await (options.syncDir ?? fsyncDir)(dir);
  } finally {
    if (tmpExists) await unlink(tmp).catch(() => undefined);
  }
}

/** fsync of a directory, so that entries created or renamed in it survive a crash. */
export async function fsyncDir(dir: string): Promise<void> {
  // Directories cannot be opened for fsync on Windows; the rename is still atomic there.
  if (process.platform === 'win32') return;
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
