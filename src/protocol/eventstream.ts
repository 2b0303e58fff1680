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
