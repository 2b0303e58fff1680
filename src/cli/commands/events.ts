import { PilotError, toPilotError } from '../../errors.js';
import { formatAddr } from '../../protocol/address.js';
import type { JsonObject } from '../../protocol/json.js';
import { publish as publishEvent, subscribe as subscribeEvents } from '../../sdk/events.js';
import { countFlag, durationFlag, invalid, maxPositionals, positional, requireFlag } from '../args.js';
import { withDriver, type CommandSpec } from '../command.js';
import { consumeUntil, formatMs, type ConsumeEnd } from '../stream-io.js';
import { resolveTarget } from '../target.js';

const DIAL_TIMEOUT_MS = 30_000;

function checkTopic(topic: string): string {
  if (Buffer.byteLength(topic) > 1024) throw invalid('topic is longer than 1024 bytes');
  return topic;
}

export const subscribe: CommandSpec = {
  name: 'subscribe',
  args: ['<node_id|address|hostname>', '<topic>', '[--count <n>]', '[--timeout <duration>]'],
  description:
    'Subscribes to a topic on a node\'s event stream (port 1002): "*" is every topic, "name.*" every topic under "name.". Without --count it prints one JSON object per event, one per line, until Ctrl-C (exit 130) or --timeout (exit 0); with --count it stops after that many events, and fewer before --timeout (or the stream ending) is an error.',
  returns:
    'bounded: {events: [{bytes, data, topic}], timeout: false} (+dropped when the broker dropped events for this subscriber, +interrupted: true after Ctrl-C); unbounded: one {bytes, data, topic} per line',
  flags: { count: 'string', timeout: 'string' },
  interruptible: true,
  async run(ctx, args, usage) {
    maxPositionals(args, 2, usage);
    const targetText = positional(args, 0, 'target', usage);
    const topic = checkTopic(positional(args, 1, 'topic', usage));
    const count = countFlag(args, 'count', 0, { min: 0 });
    const timeoutMs = durationFlag(args, 'timeout', 0, { allowZero: true });
    return withDriver(ctx, async (d) => {
      const target = await resolveTarget(d, targetText);
      const sub = await subscribeEvents(d, target.addr, topic, { timeoutMs: DIAL_TIMEOUT_MS }).catch((err: unknown) => {
        throw new PilotError(
          'connection_failed',
          `cannot reach the event stream of ${target.text}: ${toPilotError(err).message}`,
          'the node must trust you and run its event stream (no -no-eventstream)',
          { cause: err },
        );
      });
      const events: JsonObject[] = [];
      let end: ConsumeEnd | undefined;
      let failure: string | undefined;
      try {
        end = await consumeUntil(
          sub,
          timeoutMs,
          (e) => {
            const line = { bytes: e.data.length, data: e.data.toString('utf8'), topic: e.topic };
            if (count === 0) {
              ctx.out.ndjson(line);
              return true;
            }
            events.push(line);
            ctx.out.info(`[${line.topic}] ${line.data}`);
            return events.length < count;
          },
          ctx.interrupt,
        );
      } catch (err) {
        failure = toPilotError(err).message;
      } finally {
        sub.close();
      }
      if (count === 0) {
        if (failure !== undefined) throw new PilotError('connection_failed', `event stream: ${failure}`);
        return undefined;
      }
      const data: JsonObject = { events, timeout: false };
      if (sub.dropped > 0) data.dropped = sub.dropped;
      if (end === 'interrupted') {
        data.interrupted = true;
        return { data, text: `interrupted: ${events.length} of ${count} events`, interrupted: true };
      }
      if (events.length >= count) return { data, text: '' };
      // Fewer events than asked for: a failure, after those that came were printed.
      const got = `received ${events.length} of ${count} events`;
      if (end === 'timeout')
        throw new PilotError(
          'timeout',
          `timed out after ${formatMs(timeoutMs)}: ${got}`,
          'raise --timeout, or check that something publishes on the topic',
        );
      throw new PilotError(
        'connection_failed',
        `event stream ended early (${failure ?? 'the broker closed the stream'}): ${got}`,
      );
    });
  },
};

export const publish: CommandSpec = {
  name: 'publish',
  args: ['<node_id|address|hostname>', '<topic>', '--data <text>'],
  description:
    "Publishes one event on a node's event stream (port 1002) to every subscriber of the topic but this connection.",
  returns: '{bytes, target, topic}',
  flags: { data: 'string' },
  async run(ctx, args, usage) {
    maxPositionals(args, 2, usage);
    const targetText = positional(args, 0, 'target', usage);
    const topic = checkTopic(positional(args, 1, 'topic', usage));
    if (topic.startsWith('_pilot.')) throw invalid(`topic ${JSON.stringify(topic)} is reserved for the broker`);
    const data = requireFlag(args, 'data', usage);
    return withDriver(ctx, async (d) => {
      const target = await resolveTarget(d, targetText);
      const bytes = await publishEvent(d, target.addr, topic, data, { timeoutMs: DIAL_TIMEOUT_MS }).catch(
        (err: unknown) => {
          throw new PilotError(
            'connection_failed',
            `cannot publish on ${target.text}: ${toPilotError(err).message}`,
            'the node must trust you and run its event stream (no -no-eventstream)',
            { cause: err },
          );
        },
      );
      return {
        data: { bytes, target: formatAddr(target.addr), topic },
        text: `published ${bytes} bytes to ${topic} on ${target.text}`,
      };
    });
  },
};
