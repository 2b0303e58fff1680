import { performance } from 'node:perf_hooks';
import { PilotError, toPilotError } from '../../errors.js';
import { formatAddr } from '../../protocol/address.js';
import type { JsonObject } from '../../protocol/json.js';
import { durationFlag, maxPositionals, positional } from '../args.js';
import { withDriver, type CommandSpec } from '../command.js';
import type { CliConn } from '../context.js';
import { readUntil } from '../stream-io.js';
import { resolveTarget } from '../target.js';

const ECHO_PORT = 7;
const SAMPLES = 3;

const round3 = (n: number): number => Math.round(n * 1000) / 1000;

/**
 * As the reference: one stream to the echo port (its setup time is the dial), then three echoes
 * of `trace-<i>` on it, each timed on its own. The overlay has a single hop, so this separates the
 * connection setup from the round trip of data on an open stream.
 */
export const traceroute: CommandSpec = {
  name: 'traceroute',
  args: ['<node_id|address|hostname>', '[--timeout <duration>]'],
  description: `Times the connection setup to the echo port 7, then ${SAMPLES} echoes of "trace-<i>" on that stream (30s overall by default).`,
  returns:
    '{rtt_samples: [{bytes, rtt_ms} or {error, rtt_ms}], setup_ms, target}; a failed setup or no echo at all is an error',
  flags: { timeout: 'string' },
  async run(ctx, args, usage) {
    maxPositionals(args, 1, usage);
    const targetText = positional(args, 0, 'target', usage);
    const timeoutMs = durationFlag(args, 'timeout', 30_000);
    return withDriver(ctx, async (d) => {
      const target = await resolveTarget(d, targetText);
      const addr = formatAddr(target.addr);
      const deadline = Date.now() + timeoutMs;
      ctx.out.info(`traceroute to ${target.text}${target.text === addr ? '' : ` (${addr})`} port ${ECHO_PORT}`);
      const start = performance.now();
      let conn: CliConn;
      try {
        conn = await d.dial(target.addr, ECHO_PORT, { timeoutMs });
      } catch (err) {
        const e = toPilotError(err);
        const setup = round3(performance.now() - start);
        throw new PilotError(
          e.code,
          `connection setup to ${target.text} failed after ${setup.toFixed(2)} ms: ${e.message}`,
          e.hint,
          { cause: err },
        );
      }
      const setup = round3(performance.now() - start);
      const lines = [`setup ${setup.toFixed(2)} ms`];
      const samples: JsonObject[] = [];
      try {
        for (let i = 0; i < SAMPLES; i++) {
          const payload = Buffer.from(`trace-${i}`);
          const t0 = performance.now();
          try {
            const left = deadline - Date.now();
            if (left <= 0) throw new PilotError('timeout', 'traceroute timed out');
            conn.write(payload);
            const echoed = await readUntil(conn, (n) => n >= payload.length, left, `echo ${i}`);
            if (echoed.length < payload.length)
              throw new PilotError(
                'connection_failed',
                `echo closed after ${echoed.length} of ${payload.length} bytes`,
              );
            const rtt = round3(performance.now() - t0);
            samples.push({ bytes: echoed.length, rtt_ms: rtt });
            lines.push(`${i + 1}  ${addr}  ${rtt.toFixed(2)} ms  (${echoed.length} bytes)`);
          } catch (err) {
            const e = toPilotError(err);
            samples.push({ error: e.message, rtt_ms: round3(performance.now() - t0) });
            lines.push(`${i + 1}  ${addr}  error: ${e.message}`);
            // The stream is no longer in step with what was sent: later samples would be wrong.
            break;
          }
        }
      } finally {
        conn.destroy();
      }
      const failed = samples.find((s) => 'error' in s);
      if (failed !== undefined && samples.every((s) => 'error' in s)) {
        ctx.out.info(lines.join('\n'));
        throw new PilotError(
          'connection_failed',
          `no echo from ${target.text} on an open stream: ${String(failed.error)}`,
        );
      }
      return {
        data: { rtt_samples: samples, setup_ms: setup, target: formatAddr(target.addr) },
        text: lines.join('\n'),
      };
    });
  },
};
