import { randomBytes } from 'node:crypto';
import { chmod, link, lstat, mkdir, open, readdir, rename, unlink } from 'node:fs/promises';
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

const TEMP_RANDOM_BYTES = 6;
/** `.<final name>.<12 hex digits>.tmp`: the temp files of writeFileAtomic, and only those. */
const TEMP_NAME = new RegExp(`^\\..+\\.[0-9a-f]{${TEMP_RANDOM_BYTES * 2}}\\.tmp$`);

/** Whether a directory entry is named as a temp file of writeFileAtomic. */
export function isAtomicTempName(name: string): boolean {
  return TEMP_NAME.test(name);
}

export interface TempSweepOptions {
  /** Keep temp files modified less than this long ago (another process may be writing them). */
  readonly olderThanMs?: number;
  /** Unix ms (default: now). */
  readonly now?: number;
}

/**
 * Removes the temp files a crash left in `dir` in the middle of writeFileAtomic: regular files
 * named by isAtomicTempName, nothing else, not recursively. Returns the names removed (none when
 * the directory does not exist). Only the directory's owner calls this, before it writes there.
 */
export async function removeStaleTemps(dir: string, options: TempSweepOptions = {}): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const now = options.now ?? Date.now();
  const removed: string[] = [];
  for (const name of names) {
    if (!isAtomicTempName(name)) continue;
    const path = join(dir, name);
    const st = await lstat(path).catch(() => undefined);
    if (!st?.isFile()) continue;
    if (options.olderThanMs !== undefined && now - st.mtimeMs < options.olderThanMs) continue;
    try {
      await unlink(path);
      removed.push(name);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  return removed;
}

/**
 * Writes `data` so that after a crash `path` holds either the old or the new
 * content in full: temp file in the same directory, fsync, rename, fsync of the directory.
 */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  options: AtomicWriteOptions = {},
): Promise<void> {
  const mode = options.mode ?? 0o600;
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${randomBytes(TEMP_RANDOM_BYTES).toString('hex')}.tmp`);
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
