import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ensureDir, removeStaleTemps, writeFileAtomic } from '../../crypto/atomic-file.js';
import { isJsonObject } from '../../protocol/json.js';
import { Coalescer } from './coalesce.js';
import { readInbox, type DataStore } from './store.js';

/**
 * `<home>/dataexchange/state.json`, owned by the running service: the idempotency keys already
 * stored per sender (bounded, oldest dropped first) and which sender stored each file in received/
 * (a file does not say, yet quotas are per sender).
 */

export const MAX_KEYS_PER_SENDER = 1024;
export const MAX_SENDERS = 4096;

interface StateFile {
  seen: Record<string, string[]>;
  files: Record<string, string>;
}

export class ServiceState {
  private seen = new Map<string, string[]>();
  private files = new Map<string, string>();
  readonly path: string;
  private readonly writer = new Coalescer(() => this.write());

  private constructor(private readonly dir: string) {
    this.path = join(dir, 'state.json');
  }

  /** Removes temp files of a state write a crash interrupted (run before open, by the service). Returns the paths removed. */
  static async removeLeftovers(home: string): Promise<string[]> {
    const dir = join(home, 'dataexchange');
    return (await removeStaleTemps(dir)).map((name) => join(dir, name));
  }

  /** Who sent each file in received/, as recorded when it was stored (read-only, for listings). */
  static async senders(home: string): Promise<Map<string, string>> {
    return (await ServiceState.open(home)).files;
  }

  static async open(home: string): Promise<ServiceState> {
    const state = new ServiceState(join(home, 'dataexchange'));
    const text = await readFile(state.path, 'utf8').catch(() => undefined);
    if (text !== undefined) {
      try {
        const parsed: unknown = JSON.parse(text);
        if (isJsonObject(parsed)) {
          const seen = parsed.seen;
          const files = parsed.files;
          if (isJsonObject(seen)) {
            for (const [sender, keys] of Object.entries(seen)) {
              if (Array.isArray(keys))
                state.seen.set(
                  sender,
                  keys.filter((k): k is string => typeof k === 'string').slice(-MAX_KEYS_PER_SENDER),
                );
            }
          }
          if (isJsonObject(files)) {
            for (const [name, sender] of Object.entries(files))
              if (typeof sender === 'string') state.files.set(name, sender);
          }
        }
      } catch {
        // A corrupt state file loses only duplicate suppression; start afresh.
      }
    }
    return state;
  }

  hasSeen(sender: string, key: string): boolean {
    return this.seen.get(sender)?.includes(key) ?? false;
  }

  markSeen(sender: string, key: string): void {
    const keys = this.seen.get(sender) ?? [];
    this.seen.delete(sender);
    keys.push(key);
    if (keys.length > MAX_KEYS_PER_SENDER) keys.splice(0, keys.length - MAX_KEYS_PER_SENDER);
    this.seen.set(sender, keys);
    if (this.seen.size > MAX_SENDERS) {
      const oldest = this.seen.keys().next().value;
      if (oldest !== undefined) this.seen.delete(oldest);
    }
  }

  recordFile(name: string, sender: string): void {
    this.files.set(name, sender);
  }

  /**
   * Resolves once the state as it is now is durably on disk. Writes never overlap, so an older
   * snapshot cannot replace a newer one; callers that ask while a write runs share the next write.
   */
  save(): Promise<void> {
    return this.writer.request();
  }

  private async write(): Promise<void> {
    const body: StateFile = { seen: Object.fromEntries(this.seen), files: Object.fromEntries(this.files) };
    const text = JSON.stringify(body);
    await ensureDir(this.dir);
    await writeFileAtomic(this.path, text, { mode: 0o600 });
  }

  /**
   * Bytes per sender currently on disk: inbox messages by their `from`, received files by the
   * recorded sender. Entries for files deleted since (`pilotctl received --clear`) are dropped.
   */
  async scanUsage(store: DataStore): Promise<Map<string, number>> {
    const usage = new Map<string, number>();
    const add = (sender: string, n: number): void => {
      usage.set(sender, (usage.get(sender) ?? 0) + n);
    };
    for (const [name, sender] of [...this.files]) {
      const st = await stat(join(store.received, name)).catch(() => undefined);
      if (st === undefined) this.files.delete(name);
      else add(sender, st.size);
    }
    const messages = (await readInbox(store.inbox).catch(() => undefined)) ?? [];
    for (const m of messages) if (typeof m.body.from === 'string') add(m.body.from, m.size);
    return usage;
  }
}
