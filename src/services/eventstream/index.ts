export { Broker, DEFAULT_MAX_TOPICS_PER_CONN } from './broker.js';
export type { BrokerOptions } from './broker.js';
export { BrokerClient } from './client.js';
export { BoundedQueue, DEFAULT_QUEUE_LIMITS } from './queue.js';
export type { QueueLimits } from './queue.js';
export { createEventStream, startEventStream, EVENT_STREAM_PORT } from './service.js';
export type { EventStreamOptions } from './service.js';
export {
  DROPPED_TOPIC,
  RESERVED_PREFIX,
  isReservedTopic,
  parsePattern,
  prefixKeys,
  topicMatches,
} from '../../protocol/event-topics.js';
export type { TopicPattern } from '../../protocol/event-topics.js';
