import { EVENT_TOPIC_ALL } from './eventstream.js';

/**
 * Topic patterns of the event stream broker.
 *
 * - `*` matches every topic (as in the reference broker).
 * - A pattern ending in `.*` with something before it (`metrics.*`) matches every topic that
 *   starts with the part before the `*` (`metrics.cpu`, `metrics.cpu.load`, and the literal
 *   `metrics.*`), but not `metrics` itself. This is an extension: the reference only matches
 *   `metrics.*` literally.
 * - Anything else matches exactly that topic.
 *
 * Topics starting with `_pilot.` are reserved for notices the broker itself sends; clients may
 * subscribe to them but cannot publish to them.
 */

export const RESERVED_PREFIX = '_pilot.';
/** Notice sent to a subscriber after events were dropped for it; payload `{"dropped":<total>}`. */
export const DROPPED_TOPIC = '_pilot.dropped';
/**
 * Last event on a connection the broker refuses (oversize event, too many subscriptions), sent
 * whatever the connection subscribed to, just before the close; payload `{"error":"<reason>"}`.
 * A reference client sees an ordinary event on this topic.
 */
export const ERROR_TOPIC = '_pilot.error';

export type TopicPattern =
  | { readonly kind: 'all' }
  | { readonly kind: 'prefix'; readonly prefix: string }
  | { readonly kind: 'exact'; readonly topic: string };

export function parsePattern(pattern: string): TopicPattern {
  if (pattern === EVENT_TOPIC_ALL) return { kind: 'all' };
  if (pattern.length > 2 && pattern.endsWith('.*')) return { kind: 'prefix', prefix: pattern.slice(0, -1) };
  return { kind: 'exact', topic: pattern };
}

export function topicMatches(pattern: string, topic: string): boolean {
  const p = parsePattern(pattern);
  switch (p.kind) {
    case 'all':
      return true;
    case 'prefix':
      return topic.startsWith(p.prefix);
    case 'exact':
      return topic === p.topic;
  }
}

export function isReservedTopic(topic: string): boolean {
  return topic.startsWith(RESERVED_PREFIX);
}

/**
 * Every prefix key (`a.`, `a.b.`) under which a prefix subscription could match `topic`, shortest
 * first. A topic with no dot has none.
 */
export function prefixKeys(topic: string): string[] {
  const keys: string[] = [];
  for (let i = topic.indexOf('.'); i >= 0; i = topic.indexOf('.', i + 1)) keys.push(topic.slice(0, i + 1));
  return keys;
}
