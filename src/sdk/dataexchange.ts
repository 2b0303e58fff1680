import { watch } from 'node:fs';
import { open, readdir, readFile, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import type { Duplex } from 'node:stream';
import { pilotHome, pilotPaths } from '../config/home.js';
import { fromBase64 } from '../crypto/base64.js';
import { PilotError } from '../errors.js';
import { formatAddr, type Addr } from '../protocol/address.js';
import { DATA_EXCHANGE_PORT, DATA_MAX_PAYLOAD, DataType, encodeDataFrame, isAck } from '../protocol/dataexchange.js';
import type { JsonObject } from '../protocol/json.js';
import { Outbox } from '../services/dataexchange/outbox.js';
import { FrameChannel, tooLarge } from '../services/dataexchange/frame-channel.js';
import { isInboxName, readInbox, readInboxFile } from '../services/dataexchange/store.js';
import { toAddr } from './validate.js';

/**
 * Data exchange (port 1001) for applications: send messages and files to a peer's inbox, list the
 * local inbox and follow what arrives. `driver` is a connected `Driver` (anything that can dial).
 */

export type MessageType = 'text' | 'json' | 'binary';

export interface DataDialer {
  /** `data` are the stream's first bytes: sent before anything written to the returned stream. */
  dial(
    addr: Addr,
    port: number,
    options?: { timeoutMs?: number; signal?: AbortSignal; data?: Uint8Array },
  ): Promise<Duplex>;
}

export interface SendOptions {
  /** Store in the local outbox and let the daemon deliver (retrying until acknowledged or expired). */
  queue?: boolean;
  /** Pilot home whose outbox is used with `queue` (default `$PILOT_HOME` or ~/.pilot). */
  home?: string;
  /** Outbox lifetime of a queued item (default 24 h). */
  ttlMs?: number;
  timeoutMs?: number;
  /** Data bytes sent so far (file transfers). */
  onProgress?: (sent: number, total: number) => void;
}

export interface SendMessageOptions extends SendOptions {
  type?: MessageType;
}

/** `ack` is the service's reply text when sent directly; `id` the outbox item when queued. */
export interface SendResult {
  readonly bytes: number;
  readonly target: string;
  readonly ack?: string;
  readonly queued?: boolean;
  readonly id?: string;
}

const TYPE_CODES: Record<MessageType, number> = { text: DataType.Text, json: DataType.Json, binary: DataType.Binary };
const FILE_CHUNK = 256 * 1024;
/** Messages up to this size travel with the dial as its first bytes. */
const FIRST_BYTES_MAX = 60 * 1024;

/** Sends one TEXT, JSON or BINARY message; JSON text is validated first. Rejects unless acknowledged. */
export async function sendMessage(
  driver: DataDialer,
  target: Addr | string,
  data: string | Uint8Array,
  options: SendMessageOptions = {},
): Promise<SendResult> {
  const type = options.type ?? 'text';
  const payload = typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data);
  if (type === 'json') {
    try {
      JSON.parse(payload.toString('utf8'));
    } catch (err) {
      throw new PilotError('invalid_argument', `data is not valid JSON: ${(err as Error).message}`);
    }
  }
  if (payload.length > DATA_MAX_PAYLOAD) throw tooLarge(payload.length);
  return deliver(driver, target, TYPE_CODES[type], payload, undefined, options);
}

/** Sends a file: a local path (streamed from disk) or `{name, data}`. */
export async function sendFile(
  driver: DataDialer,
  target: Addr | string,
  file: string | { name: string; data: Uint8Array },
  options: SendOptions = {},
): Promise<SendResult> {
  if (typeof file !== 'string')
    return deliver(driver, target, DataType.File, Buffer.from(file.data), file.name, options);
  const name = basename(file);
  const st = await stat(file).catch((err: Error) => {
    throw new PilotError('not_found', `cannot read ${file}: ${err.message}`);
  });
  if (!st.isFile()) throw new PilotError('invalid_argument', `${file} is not a regular file`);
  const overhead = 2 + Buffer.byteLength(name);
  if (st.size + overhead > DATA_MAX_PAYLOAD) throw tooLarge(st.size, overhead);
  if (options.queue === true) return deliver(driver, target, DataType.File, await readFile(file), name, options);
  const addr = toAddr(target);
  const channel = new FrameChannel(await driver.dial(addr, DATA_EXCHANGE_PORT, dialOptions(options)));
  try {
    const fh = await open(file, 'r');
    try {
      await channel.sendFileStream(
        name,
        st.size,
        fh.createReadStream({ highWaterMark: FILE_CHUNK, autoClose: false }),
        (n) => options.onProgress?.(n, st.size),
      );
    } finally {
      await fh.close();
    }
    return acked(await channel.reply(options.timeoutMs), st.size, addr);
  } finally {
    channel.close();
  }
}

function dialOptions(options: SendOptions): { timeoutMs?: number } {
  return options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs };
}

function acked(reply: string, bytes: number, addr: Addr): SendResult {
  if (!isAck(reply)) throw new PilotError('refused', `receiver refused: ${reply}`);
  return { ack: reply, bytes, target: formatAddr(addr) };
}

async function deliver(
  driver: DataDialer,
  target: Addr | string,
  type: number,
  data: Buffer,
  filename: string | undefined,
  options: SendOptions,
): Promise<SendResult> {
  const addr = toAddr(target);
  if (options.queue === true) {
    const outbox = new Outbox(options.home ?? pilotHome());
    const item = await outbox.enqueue({
      target: formatAddr(addr),
      type,
      data,
      ...(filename !== undefined ? { filename } : {}),
      ...(options.ttlMs !== undefined ? { ttlMs: options.ttlMs } : {}),
    });
    return { bytes: data.length, target: item.target, queued: true, id: item.id };
  }
  // A message that fits goes with the dial (in the SYN to a pilot-ts peer): acknowledged a round trip sooner.
  const first =
    filename === undefined && data.length <= FIRST_BYTES_MAX ? encodeDataFrame({ type, payload: data }) : undefined;
  const channel = new FrameChannel(
    await driver.dial(addr, DATA_EXCHANGE_PORT, { ...dialOptions(options), ...(first ? { data: first } : {}) }),
  );
  try {
    if (filename !== undefined) {
      await channel.sendFileStream(filename, data.length, [data], (n) => options.onProgress?.(n, data.length));
    } else if (first === undefined) {
      await channel.sendFrame(type, data);
    }
    return acked(await channel.reply(options.timeoutMs), data.length, addr);
  } finally {
    channel.close();
  }
}

/** A message from the local inbox; `data` decoded (BINARY stored as base64 comes back as bytes). */
export interface InboxMessage {
  readonly kind: 'message';
  readonly type: string;
  readonly from: string;
  readonly bytes: number;
  readonly receivedAt: string;
  readonly data: Buffer;
  readonly path: string;
}

export interface ReceivedFile {
  readonly kind: 'file';
  readonly name: string;
  readonly path: string;
  readonly bytes: number;
}

function toMessage(o: JsonObject, path: string): InboxMessage {
  const raw = typeof o.data === 'string' ? o.data : '';
  const data = o.encoding === 'base64' ? Buffer.from(fromBase64(raw) ?? new Uint8Array()) : Buffer.from(raw, 'utf8');
  return {
    kind: 'message',
    type: String(o.type ?? ''),
    from: String(o.from ?? ''),
    bytes: typeof o.bytes === 'number' ? o.bytes : data.length,
    receivedAt: String(o.received_at ?? ''),
    data,
    path,
  };
}

/** The messages in the local inbox, oldest first. */
export async function inbox(options: { home?: string } = {}): Promise<InboxMessage[]> {
  const dir = pilotPaths(options.home ?? pilotHome()).inbox;
  const entries = (await readInbox(dir).catch(() => undefined)) ?? [];
  return entries.map((e) => toMessage(e.body, e.path));
}

export interface IncomingOptions {
  home?: string;
  signal?: AbortSignal;
  /** Fallback rescan interval when file-system events are missed (default 500 ms). */
  pollMs?: number;
}

/** New inbox messages and received files from now on, as the daemon stores them. */
export async function* incoming(options: IncomingOptions = {}): AsyncGenerator<InboxMessage | ReceivedFile> {
  const paths = pilotPaths(options.home ?? pilotHome());
  const dirs = [paths.inbox, paths.received];
  const seen = new Set<string>();
  const visible = async (dir: string): Promise<string[]> =>
    (await readdir(dir).catch(() => [] as string[])).filter((n) => !n.startsWith('.')).sort();
  for (const dir of dirs) for (const n of await visible(dir)) seen.add(join(dir, n));
  let wake: (() => void) | undefined;
  const watchers = dirs.flatMap((dir) => {
    try {
      return [watch(dir, () => wake?.())];
    } catch {
      return [];
    }
  });
  const onAbort = (): void => wake?.();
  options.signal?.addEventListener('abort', onAbort);
  try {
    while (options.signal?.aborted !== true) {
      for (const dir of dirs) {
        for (const n of await visible(dir)) {
          const path = join(dir, n);
          if (seen.has(path)) continue;
          seen.add(path);
          if (dir === paths.inbox) {
            const entry = isInboxName(n) ? await readInboxFile(path) : undefined;
            if (entry) yield toMessage(entry.body, path);
          } else {
            const st = await stat(path).catch(() => undefined);
            if (st?.isFile()) yield { kind: 'file', name: n, path, bytes: st.size };
          }
        }
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, options.pollMs ?? 500);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = undefined;
    }
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    for (const w of watchers) w.close();
  }
}
