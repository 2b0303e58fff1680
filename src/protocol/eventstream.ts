import { utf8Decode } from './bytes.js';
import { fail, ok, type DecodeResult } from './result.js';
import { decodeFirst, StreamDecoder, type ByteQueue, type Decoded } from './stream.js';

/** Event stream events on port 1002 (PROTOCOL.md §9.4). */

export const EVENT_MAX_TOPIC = 1024;
export const EVENT_MAX_PAYLOAD = 16777216;
/** Topic of a subscription to every topic. */
export const EVENT_TOPIC_ALL = '*';

export interface StreamEvent {
  readonly topic: string;
  readonly payload: Uint8Array;
}

/** One buffer (the reference writes an event in one stream write). Throws RangeError past the limits. */
export function encodeEvent(event: StreamEvent): Uint8Array {
  // The topic is written straight into the frame (no intermediate encoding: this runs per event).
  const topicLength = Buffer.byteLength(event.topic, 'utf8');
  if (topicLength > EVENT_MAX_TOPIC) throw new RangeError(`event topic too long: ${topicLength} bytes`);
  if (event.payload.length > EVENT_MAX_PAYLOAD)
    throw new RangeError(`event payload too long: ${event.payload.length} bytes`);
  const buf = Buffer.allocUnsafe(2 + topicLength + 4 + event.payload.length);
  buf.writeUInt16BE(topicLength, 0);
  buf.write(event.topic, 2, topicLength, 'utf8');
  buf.writeUInt32BE(event.payload.length, 2 + topicLength);
  buf.set(event.payload, 6 + topicLength);
  return buf;
}

/**
 * The last topic decoded on a stream: events mostly repeat a topic, and comparing its bytes in
 * place is much cheaper than taking and decoding them again.
 */
class TopicCache {
  private bytes: Uint8Array = new Uint8Array(0);
  private text = '';

  /** The topic of `length` bytes at position 2 of the queue; the queue is not advanced. */
  read(queue: ByteQueue, length: number): string {
    if (length !== this.bytes.length || !queue.equalsAt(2, this.bytes)) {
      const copy = new Uint8Array(length);
      for (let k = 0; k < length; k++) copy[k] = queue.byteAt(2 + k);
      this.bytes = copy;
      this.text = utf8Decode(copy);
    }
    return this.text;
  }
}

function eventStep(queue: ByteQueue, topics?: TopicCache): DecodeResult<StreamEvent> | null {
  if (queue.length < 2) return null;
  const topicLen = queue.readUint16(0);
  if (topicLen > EVENT_MAX_TOPIC) return fail('too_long', `event topic length ${topicLen} exceeds ${EVENT_MAX_TOPIC}`);
  if (queue.length < 6 + topicLen) return null;
  const payloadLen = queue.readUint32(2 + topicLen);
  if (payloadLen > EVENT_MAX_PAYLOAD)
    return fail('too_long', `event payload length ${payloadLen} exceeds ${EVENT_MAX_PAYLOAD}`);
  if (queue.length < 6 + topicLen + payloadLen) return null;
  let topic: string;
  if (topics) {
    topic = topics.read(queue, topicLen);
    queue.skip(6 + topicLen);
  } else {
    queue.skip(2);
    topic = utf8Decode(queue.take(topicLen));
    queue.skip(4);
  }
  return ok({ topic, payload: queue.take(payloadLen) });
}

export function decodeEvent(bytes: Uint8Array): DecodeResult<Decoded<StreamEvent>> {
  return decodeFirst(eventStep, bytes, 'event');
}

/** Incremental decoder; oversize topic or payload lengths fail with 'too_long' before buffering. */
export class EventDecoder extends StreamDecoder<StreamEvent> {
  constructor() {
    const topics = new TopicCache();
    super((queue) => eventStep(queue, topics));
  }
}

/** Writes one event at `offset` of `target` (which must have room: eventLength()); returns the end offset. */
export function encodeEventInto(target: Buffer, offset: number, topic: string, payload: Uint8Array): number {
  const topicLength = target.write(topic, offset + 2, 'utf8');
  target.writeUInt16BE(topicLength, offset);
  target.writeUInt32BE(payload.length, offset + 2 + topicLength);
  target.set(payload, offset + 6 + topicLength);
  return offset + 6 + topicLength + payload.length;
}

/** Encoded size of an event; RangeError past the protocol's limits. */
export function eventLength(topic: string, payloadLength: number): number {
  const topicLength = Buffer.byteLength(topic, 'utf8');
  if (topicLength > EVENT_MAX_TOPIC) throw new RangeError(`event topic too long: ${topicLength} bytes`);
  if (payloadLength > EVENT_MAX_PAYLOAD) throw new RangeError(`event payload too long: ${payloadLength} bytes`);
  return 6 + topicLength + payloadLength;
}

/**
 * Consecutive whole events on one topic exactly as they came on the wire, so that a broker can
 * relay them without decoding and encoding each one. An event with an empty payload is always a
 * run of its own (it may be a subscription).
 */
export interface EventRun {
  readonly topic: string;
  /** The events' bytes, one frame after the other. */
  readonly frames: Buffer;
  readonly count: number;
  /** Payload bytes of all the run's events (0 only for a single empty event). */
  readonly payloadBytes: number;
}

/** The longest frame header: topic length, topic, payload length. */
const HEADER_MAX = 2 + EVENT_MAX_TOPIC + 4;

/** Runs end after this many events, so that one fits a subscriber queue whole. */
export const EVENT_RUN_MAX = 256;

/** Length of the frame that starts at `offset` of well-formed `frames`. */
export function frameLengthAt(frames: Uint8Array, offset: number): number {
  const topicLength = ((frames[offset] as number) << 8) | (frames[offset + 1] as number);
  const at = offset + 2 + topicLength;
  const payloadLength =
    (((frames[at] as number) << 24) |
      ((frames[at + 1] as number) << 16) |
      ((frames[at + 2] as number) << 8) |
      (frames[at + 3] as number)) >>>
    0;
  return 6 + topicLength + payloadLength;
}

function sameBytes(a: Uint8Array, aStart: number, b: Uint8Array, bStart: number, length: number): boolean {
  for (let k = 0; k < length; k++) if (a[aStart + k] !== b[bStart + k]) return false;
  return true;
}

/**
 * Incremental reader of event runs. A frame split across chunks is joined once its declared
 * length is in (a large event is gathered, not copied again per chunk); oversize topic or payload
 * lengths fail with 'too_long' as soon as their header is in, before anything is buffered. Runs
 * are views of the pushed chunks or of a joined copy: pushed chunks must not be modified later.
 */
export class EventRunReader {
  private held: Uint8Array[] = [];
  private heldBytes = 0;
  /** Full length of the frame being gathered, once its header is in (0 before). */
  private need = 0;
  private failure: DecodeResult<EventRun> | null = null;
  private topicBytes: Uint8Array = new Uint8Array(0);
  private topicText = '';

  /** Bytes held for an event that is not complete yet. */
  get buffered(): number {
    return this.heldBytes;
  }

  /** Runs completed by this chunk; if the last element is a failure the stream is unusable. */
  push(chunk: Uint8Array): DecodeResult<EventRun>[] {
    if (this.failure) return [this.failure];
    const out: DecodeResult<EventRun>[] = [];
    let buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    // A frame begun in earlier chunks is completed by joining only the bytes it still lacks (or,
    // while its header is incomplete, just enough to read the header); the rest of the chunk is
    // read in place instead of being copied along.
    while (this.heldBytes > 0 && buf.length > 0) {
      const take = this.need > 0 ? this.need - this.heldBytes : Math.min(buf.length, HEADER_MAX);
      if (buf.length < take) {
        this.held.push(buf);
        this.heldBytes += buf.length;
        return out;
      }
      this.held.push(buf.subarray(0, take));
      const joined = Buffer.concat(this.held, this.heldBytes + take);
      this.held = [];
      this.heldBytes = 0;
      buf = buf.subarray(take);
      if (!this.scan(joined, out)) return out;
    }
    if (buf.length > 0) this.scan(buf, out);
    return out;
  }

  /**
   * Appends the runs of the whole frames at the start of `buf` to `out`, and holds (a copy of) the
   * incomplete frame after them; false once the stream failed.
   */
  private scan(buf: Buffer, out: DecodeResult<EventRun>[]): boolean {
    let pos = 0;
    let runStart = 0;
    let runCount = 0;
    let runPayload = 0;
    let runTopicLength = -1;
    this.need = 0;
    while (pos + 2 <= buf.length) {
      const topicLength = ((buf[pos] as number) << 8) | (buf[pos + 1] as number);
      if (topicLength > EVENT_MAX_TOPIC) {
        this.close(out, buf, runStart, pos, runCount, runPayload, runTopicLength);
        this.fail(out, `event topic length ${topicLength} exceeds ${EVENT_MAX_TOPIC}`);
        return false;
      }
      const at = pos + 2 + topicLength;
      if (at + 4 > buf.length) break;
      const payloadLength =
        (((buf[at] as number) << 24) |
          ((buf[at + 1] as number) << 16) |
          ((buf[at + 2] as number) << 8) |
          (buf[at + 3] as number)) >>>
        0;
      if (payloadLength > EVENT_MAX_PAYLOAD) {
        this.close(out, buf, runStart, pos, runCount, runPayload, runTopicLength);
        this.fail(out, `event payload length ${payloadLength} exceeds ${EVENT_MAX_PAYLOAD}`);
        return false;
      }
      const end = at + 4 + payloadLength;
      if (end > buf.length) {
        this.need = end - pos;
        break;
      }
      const joins =
        runCount > 0 &&
        payloadLength > 0 &&
        runPayload > 0 &&
        runCount < EVENT_RUN_MAX &&
        topicLength === runTopicLength &&
        sameBytes(buf, pos + 2, buf, runStart + 2, topicLength);
      if (!joins) {
        this.close(out, buf, runStart, pos, runCount, runPayload, runTopicLength);
        runCount = 0;
        runStart = pos;
        runTopicLength = topicLength;
        runPayload = 0;
      }
      runCount++;
      runPayload += payloadLength;
      pos = end;
    }
    this.close(out, buf, runStart, pos, runCount, runPayload, runTopicLength);
    if (pos < buf.length) {
      // The start of the next event: kept (copied, the chunk may be large) until the rest comes.
      const rest = Buffer.from(buf.subarray(pos));
      this.held = [rest];
      this.heldBytes = rest.length;
    }
    return true;
  }

  /** Appends the run `buf[start, end)` (if it holds any event) to `out`. */
  private close(
    out: DecodeResult<EventRun>[],
    buf: Buffer,
    start: number,
    end: number,
    count: number,
    payloadBytes: number,
    topicLength: number,
  ): void {
    if (count === 0) return;
    out.push(
      ok({ topic: this.topic(buf, start + 2, topicLength), frames: buf.subarray(start, end), count, payloadBytes }),
    );
  }

  private fail(out: DecodeResult<EventRun>[], message: string): void {
    this.failure = fail('too_long', message);
    this.held = [];
    this.heldBytes = 0;
    out.push(this.failure);
  }

  /** Events mostly repeat a topic: comparing its bytes is cheaper than decoding it again. */
  private topic(buf: Buffer, start: number, length: number): string {
    const cached = this.topicBytes;
    if (length !== cached.length || !sameBytes(buf, start, cached, 0, length)) {
      this.topicBytes = Uint8Array.prototype.slice.call(buf, start, start + length);
      this.topicText = utf8Decode(this.topicBytes);
    }
    return this.topicText;
  }
}
