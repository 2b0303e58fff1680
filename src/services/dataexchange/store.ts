import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { toBase64 } from '../../crypto/base64.js';
import { ensureDir, removeStaleTemps, writeFileAtomic } from '../../crypto/atomic-file.js';
import { pilotPaths } from '../../config/home.js';
import { dataTypeName, DataType } from '../../protocol/dataexchange.js';
import { isJsonObject, type JsonObject } from '../../protocol/json.js';
import { DirSyncGroup } from './dir-sync.js';
import { inboxFileName, receivedFileName, rfc3339Local } from './names.js';

/**
 * The one module that reads and writes inbox/ and received/ (PROTOCOL.md §9.3, §10.1): the
 * service stores into them, pilotctl and the SDK list and clear them through here.
 */

const MAX_NAME_ATTEMPTS = 1000;

export interface StoredItem {
  readonly name: string;
  readonly path: string;
  /** Bytes written to disk. */
  readonly size: number;
}

export class DataStore {
  readonly inbox: string;
  readonly received: string;
  private seq = 0;
  // Concurrent stores into inbox/ or received/ share the directory fsync.
  private readonly dirSync = new DirSyncGroup();

  constructor(home: string) {
    const paths = pilotPaths(home);
    this.inbox = paths.inbox;
    this.received = paths.received;
  }

  /** Stores an inbox message (see `inboxMessageText`). */
  async storeMessage(type: number, payload: Uint8Array, from: string, date: Date): Promise<StoredItem> {
    return this.storeMessageText(type, inboxMessageText(type, payload, from, date), date);
  }

  /** Stores an already encoded `inboxMessageText`, so a caller can know its size beforehand. */
  async storeMessageText(type: number, text: string, date: Date): Promise<StoredItem> {
    await ensureDir(this.inbox);
    return this.createUnique(this.inbox, (seq) => inboxFileName(dataTypeName(type), date, seq), text);
  }

  /** Stores a file under a unique name derived from the already sanitised `safeName`. */
  async storeFile(safeName: string, data: Uint8Array, date: Date): Promise<StoredItem> {
    await ensureDir(this.received);
    return this.createUnique(this.received, (seq) => receivedFileName(safeName, date, seq), data);
  }

  /**
   * Removes what a crash left in inbox/ and received/: temp files of an interrupted store (a
   * stored item appears only by linking its complete, synced temp file, so there are no other
   * partial files; an empty file under a final name is a real, empty item and stays). Run by the
   * service before it stores anything. Returns the paths removed.
   */
  async removeLeftovers(): Promise<string[]> {
    const removed: string[] = [];
    for (const dir of [this.inbox, this.received])
      for (const name of await removeStaleTemps(dir)) removed.push(join(dir, name));
    return removed;
  }

  /** Exclusive, durable create: a name that exists (even from the same millisecond) is never replaced. */
  private async createUnique(
    dir: string,
    nameFor: (seq: number) => string,
    data: string | Uint8Array,
  ): Promise<StoredItem> {
    for (let i = 0; i < MAX_NAME_ATTEMPTS; i++) {
      const name = nameFor(++this.seq);
      const path = join(dir, name);
      try {
        await writeFileAtomic(path, data, { mode: 0o600, exclusive: true, syncDir: this.dirSync.sync });
        return { name, path, size: typeof data === 'string' ? Buffer.byteLength(data) : data.length };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
    }
    throw new Error(`no free name in ${dir}`);
  }
}

/**
 * Inbox JSON as the reference writes it; `from` is the authenticated peer. BINARY payloads are
 * kept lossless as base64 with `"encoding":"base64"` (the reference's UTF-8 conversion would
 * corrupt them).
 */
export function inboxMessageText(type: number, payload: Uint8Array, from: string, date: Date): string {
  const binary = type === DataType.Binary;
  const body: JsonObject = {
    bytes: payload.length,
    data: binary ? toBase64(payload) : Buffer.from(payload).toString('utf8'),
    from,
    received_at: rfc3339Local(date),
    type: dataTypeName(type),
  };
  if (binary) body.encoding = 'base64';
  return JSON.stringify(body);
}

async function visibleEntries(dir: string): Promise<string[] | undefined> {
  try {
    return (await readdir(dir)).filter((n) => !n.startsWith('.')).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** One message read back from inbox/: the JSON `inboxMessageText` wrote, and its size on disk. */
export interface InboxEntry {
  readonly name: string;
  readonly path: string;
  readonly body: JsonObject;
  /** Bytes of the file. */
  readonly size: number;
}

/** Reads one inbox/ file; undefined when it is gone or is not a message (foreign or half-edited). */
export async function readInboxFile(path: string): Promise<InboxEntry | undefined> {
  const text = await readFile(path, 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  try {
    const parsed: unknown = JSON.parse(text);
    return isJsonObject(parsed)
      ? { name: basename(path), path, body: parsed, size: Buffer.byteLength(text) }
      : undefined;
  } catch {
    return undefined;
  }
}

/** Whether a name in inbox/ is a stored message (not a temp file of a store in progress). */
export function isInboxName(name: string): boolean {
  return !name.startsWith('.') && name.endsWith('.json');
}

/** The messages in inbox/, oldest first; undefined when the directory does not exist. */
export async function readInbox(dir: string): Promise<InboxEntry[] | undefined> {
  const names = await visibleEntries(dir);
  if (names === undefined) return undefined;
  const entries: InboxEntry[] = [];
  for (const name of names) {
    if (!isInboxName(name)) continue;
    const entry = await readInboxFile(join(dir, name));
    if (entry) entries.push(entry);
  }
  return entries;
}

/** `pilotctl inbox` data: `{dir, messages, total}`, or `{messages:[], total:0}` without the directory. */
export async function listInbox(home: string): Promise<JsonObject> {
  const dir = pilotPaths(home).inbox;
  const entries = await readInbox(dir);
  if (entries === undefined) return { messages: [], total: 0 };
  const messages = entries.map((e) => e.body);
  return { dir, messages, total: messages.length };
}

/** `pilotctl received` data: `{dir, files:[{bytes, modified, name, path}], total}`. */
export async function listReceived(home: string): Promise<JsonObject> {
  const dir = pilotPaths(home).received;
  const names = await visibleEntries(dir);
  if (names === undefined) return { files: [], total: 0 };
  const files: JsonObject[] = [];
  for (const name of names) {
    const path = join(dir, name);
    const st = await stat(path).catch(() => undefined);
    if (!st?.isFile()) continue;
    files.push({ bytes: st.size, modified: rfc3339Local(st.mtime), name, path });
  }
  return { dir, files, total: files.length };
}

/** Removes every visible entry of inbox/ or received/; returns how many. */
export async function clearDir(dir: string): Promise<number> {
  const names = (await visibleEntries(dir)) ?? [];
  for (const name of names) await rm(join(dir, name), { force: true });
  return names.length;
}
