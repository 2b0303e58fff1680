import { fsyncDir } from '../../crypto/atomic-file.js';
import { Coalescer } from './coalesce.js';

/**
 * Group commit of directory fsyncs: concurrent writers into one directory share an fsync, yet
 * each waits for an fsync that started after its own link/rename, so its entry is covered.
 * Meant for the few fixed directories of one owner (the map is never pruned).
 */
export class DirSyncGroup {
  private readonly byDir = new Map<string, Coalescer>();

  constructor(private readonly syncOne: (dir: string) => Promise<void> = fsyncDir) {}

  readonly sync = (dir: string): Promise<void> => {
    let coalescer = this.byDir.get(dir);
    if (coalescer === undefined) {
      coalescer = new Coalescer(() => this.syncOne(dir));
      this.byDir.set(dir, coalescer);
    }
    return coalescer.request();
  };
}
