/**
 * Pieces of the registry load generator (bench/registry.ts) shared by its threads: pipelined
 * registry connections from chosen loopback source addresses, and request signing in the
 * signed-body form daemons use (the same canonical text as src/registry/request-signer.ts).
 */
import { sign, type KeyObject } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import type { JsonObject } from '../src/protocol/json.js';
import { SIGNED_AT_FIELD, signedBodyText } from '../src/protocol/registry-auth.js';
import { encodeRegistryFrame, RegistryFrameSplitter } from '../src/protocol/registry-frame.js';

/** A loopback source address 127.<block>.<hi>.<lo> (Linux routes all of 127/8 to lo): block 1‥254, index 0‥65535. */
export function loopbackIp(block: number, index: number): string {
  return `127.${block}.${(index >> 8) & 255}.${index & 255}`;
}

export interface Reply {
  readonly msg: JsonObject;
  /** Time from writing the request to reading its reply. */
  readonly ms: number;
}

interface Pending {
  readonly t0: number;
  readonly done: (reply: Reply) => void;
  readonly fail: (err: Error) => void;
}

/**
 * One registry connection. Requests may be pipelined: the registry answers in order, so replies
 * are matched to requests first in, first out.
 */
export class RegistryConn {
  readonly #socket: Socket;
  readonly #splitter = new RegistryFrameSplitter();
  readonly #pending: Pending[] = [];
  #head = 0;
  #error: Error | undefined;

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      for (const result of this.#splitter.push(chunk)) {
        const p = this.#pending[this.#head];
        if (p === undefined) continue;
        this.#pending[this.#head++] = undefined as unknown as Pending;
        if (this.#head > 1024 && this.#head * 2 > this.#pending.length) {
          this.#pending.splice(0, this.#head);
          this.#head = 0;
        }
        if (result.ok) p.done({ msg: result.value, ms: performance.now() - p.t0 });
        else p.fail(new Error(result.error.message));
      }
    });
    const failAll = (err: Error): void => {
      this.#error ??= err;
      for (let i = this.#head; i < this.#pending.length; i++) this.#pending[i]?.fail(err);
      this.#pending.length = 0;
      this.#head = 0;
    };
    socket.on('error', failAll);
    socket.on('close', () => failAll(new Error('connection closed')));
  }

  static open(port: number, localAddress: string, timeoutMs = 10_000): Promise<RegistryConn> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port, localAddress });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`connecting from ${localAddress} timed out`));
      }, timeoutMs);
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(new RegistryConn(socket));
      });
    });
  }

  /** Requests written and not answered yet. */
  get inFlight(): number {
    return this.#pending.length - this.#head;
  }

  request(msg: JsonObject): Promise<Reply> {
    if (this.#error !== undefined) return Promise.reject(this.#error);
    return new Promise((done, fail) => {
      this.#pending.push({ t0: performance.now(), done, fail });
      this.#socket.write(encodeRegistryFrame(msg));
    });
  }

  close(): void {
    this.#socket.destroy();
  }
}

/**
 * Signs requests as daemons do (request-signer.ts `signBody`): `signed_at` strictly increasing per
 * (key, type) and an Ed25519 signature over the canonical body. Keys are indexed by node slot.
 */
export class BodySigner {
  readonly #keys: readonly KeyObject[];
  readonly #last = new Map<string, Float64Array>();

  constructor(keys: readonly KeyObject[]) {
    this.#keys = keys;
  }

  sign(slot: number, msg: JsonObject, now = Date.now()): JsonObject {
    const type = String(msg.type);
    let last = this.#last.get(type);
    if (last === undefined) {
      last = new Float64Array(this.#keys.length);
      this.#last.set(type, last);
    }
    const at = Math.max(now, (last[slot] ?? 0) + 1);
    last[slot] = at;
    const signed: JsonObject = { ...msg, [SIGNED_AT_FIELD]: at };
    const text = signedBodyText(signed);
    const key = this.#keys[slot];
    if (text === undefined || key === undefined) throw new RangeError(`cannot sign for slot ${slot}`);
    signed.signature = sign(null, Buffer.from(text, 'utf8'), key).toString('base64');
    return signed;
  }
}

/** Error replies by code, for the progress lines. */
export function countError(counts: Map<string, number>, reply: JsonObject): boolean {
  if (reply.type !== 'error') return false;
  const code = typeof reply.code === 'string' ? reply.code : String(reply.error);
  counts.set(code, (counts.get(code) ?? 0) + 1);
  return true;
}

export function sortedPercentile(sorted: Float64Array | readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] as number;
}
