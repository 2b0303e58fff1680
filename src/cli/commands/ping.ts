import { performance } from 'node:perf_hooks';
import { PilotError, toPilotError } from '../../errors.js';
import { formatAddr } from '../../protocol/address.js';
import type { JsonObject } from '../../protocol/json.js';
import { countFlag, durationFlag, invalid, maxPositionals, positional } from '../args.js';
import { withDriver, type CommandSpec } from '../command.js';
import type { CliConn } from '../context.js';
import { countUntil, drained, formatMs, pause, readUntil } from '../stream-io.js';
import { resolveTarget, targetLabel } from '../target.js';

const ECHO_PORT = 7;
/**
 * Bytes per write: one large segment. The pattern i mod 256 repeats every 256 bytes, so the bytes
 * on the wire are those of the reference's 4096-byte writes.
 */
const BENCH_CHUNK = 60 * 1024;

const round = (n: number, digits: number): number => Math.round(n * 10 ** digits) / 10 ** digits;

export const ping: CommandSpec = {
  name: 'ping',
  args: ['<node_id|address|hostname>', '[--count <n>]', '[--timeout <duration>]', '[--interval <duration>]'],
  description:
    'Measures round trips: each ping opens a new stream to the echo port 7, sends "ping-<i>" and waits for it to come back. Default 4 pings, 1s apart, 30s overall. No reply at all is an error (timeout, or the code of the last failure); Ctrl-C prints the statistics so far and exits 130.',
  returns: '{results: [{bytes, rtt_ms, seq} or {error, seq}], target, timeout} (+interrupted: true after Ctrl-C)',
  flags: { count: 'string', timeout: 'string', interval: 'string' },
  interruptible: true,
  async run(ctx, args, usage) {
    maxPositionals(args, 1, usage);
    const targetText = positional(args, 0, 'target', usage);
    const count = countFlag(args, 'count', 4);
    const timeoutMs = durationFlag(args, 'timeout', 30_000);
    const intervalMs = durationFlag(args, 'interval', 1000, { allowZero: true });
    const out = ctx.out;
    const stop = ctx.interrupt;
    return withDriver(ctx, async (d) => {
      const target = await resolveTarget(d, targetText);
      const addr = formatAddr(target.addr);
      const deadline = Date.now() + timeoutMs;
      const results: JsonObject[] = [];
      const rtts: number[] = [];
      let timedOut = false;
      let lastError: PilotError | undefined;
      out.info(`PING ${target.text}${target.text === addr ? '' : ` (${addr})`} port ${ECHO_PORT}`);
      for (let seq = 0; seq < count && !stop.aborted; seq++) {
        if (seq > 0) await pause(Math.min(intervalMs, Math.max(0, deadline - Date.now())), stop);
        if (stop.aborted) break;
        const remaining = deadline - Date.now();
        if (remaining <= 0) {
          timedOut = true;
          break;
        }
        const payload = Buffer.from(`ping-${seq}`);
        const start = performance.now();
        let conn: CliConn | undefined;
        try {
          conn = await d.dial(target.addr, ECHO_PORT, { timeoutMs: remaining, data: payload, signal: stop });
          const echoed = await readUntil(
            conn,
            (n) => n >= payload.length,
            Math.max(1, deadline - Date.now()),
            `ping ${seq}`,
            stop,
          );
          const rtt = round(performance.now() - start, 3);
          if (echoed.length < payload.length)
            throw new PilotError('connection_failed', `echo closed after ${echoed.length} of ${payload.length} bytes`);
          results.push({ bytes: echoed.length, rtt_ms: rtt, seq });
          rtts.push(rtt);
          out.info(`${echoed.length} bytes from ${addr}: seq=${seq} time=${rtt.toFixed(2)} ms`);
        } catch (err) {
          // A probe cut short by Ctrl-C is not a lost ping.
          if (stop.aborted) break;
          const e = toPilotError(err);
          lastError = e;
          const entry: JsonObject = { error: e.message, seq };
          if (conn !== undefined) entry.rtt_ms = round(performance.now() - start, 3);
          results.push(entry);
          out.info(`seq=${seq} error: ${e.message}`);
          if (e.code === 'timeout' || Date.now() >= deadline) {
            timedOut = true;
            break;
          }
        } finally {
          conn?.destroy();
        }
      }
      const interrupted = stop.aborted;
      const sent = results.length;
      const loss = sent === 0 ? 100 : round(((sent - rtts.length) / sent) * 100, 1);
      const ending = interrupted ? ', interrupted' : timedOut ? `, timed out after ${formatMs(timeoutMs)}` : '';
      const summary = [
        `--- ${target.text} ping statistics ---`,
        `${sent} sent, ${rtts.length} received, ${loss}% loss${ending}`,
      ];
      if (rtts.length > 0) {
        const avg = rtts.reduce((a, b) => a + b, 0) / rtts.length;
        summary.push(
          `rtt min/avg/max = ${Math.min(...rtts).toFixed(2)}/${avg.toFixed(2)}/${Math.max(...rtts).toFixed(2)} ms`,
        );
      }
      const data: JsonObject = { results, target: addr, timeout: timedOut };
      if (interrupted) return { data: { ...data, interrupted: true }, text: summary.join('\n'), interrupted: true };
      if (rtts.length === 0) {
        // Every probe failed: the statistics, then the error.
        out.info(summary.join('\n'));
        const code = timedOut || lastError === undefined ? 'timeout' : lastError.code;
        throw new PilotError(
          code,
          `no reply from ${target.text}: ${sent} sent, 0 received${lastError !== undefined ? ` (last error: ${lastError.message})` : ''}`,
          lastError?.hint ?? 'check that the node is up and trusts this one: pilotctl trust, pilotctl peers',
        );
      }
      return { data, text: summary.join('\n') };
    });
  },
};

function parseSizeMb(text: string): number {
  const n = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text) || !(n > 0) || n > 10_240)
    throw invalid(`invalid size ${JSON.stringify(text)}: a number of MiB from 0.001 to 10240`);
  return n;
}

const MIB = 1024 * 1024;

/** Throughput as the reference's bench reports it: MiB per second (its "MB/s"), not rounded. */
const mibPerSecond = (bytes: number, ms: number): number => (ms > 0 ? bytes / (ms / 1000) / MIB : 0);

/** The same rate in megabits per second, for the human lines. */
const mbitPerSecond = (mibs: number): number => (mibs * MIB * 8) / 1e6;

/** Byte counts as the reference's formatBytes (1024-based), with binary unit names. */
function formatBytes(n: number): string {
  if (n >= 1024 ** 3) return `${(n / 1024 ** 3).toFixed(1)} GiB`;
  if (n >= MIB) return `${(n / MIB).toFixed(1)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}

/** A duration rounded to the millisecond, printed as Go prints a time.Duration (523ms, 1.234s). */
function formatDuration(ms: number): string {
  const whole = Math.round(ms);
  return whole < 1000 ? `${whole}ms` : `${whole / 1000}s`;
}

export const bench: CommandSpec = {
  name: 'bench',
  args: ['<node_id|address|hostname>', '[size_mb=1]', '[--timeout <duration>]'],
  description:
    'Measures throughput: sends size_mb MiB (bytes i mod 256) to the echo port 7 while reading the echo back. Every phase is bounded by --timeout (default 120s). Ctrl-C prints the partial result and exits 130.',
  returns:
    '{recv_bytes, send_duration_ms, send_mbps, sent_bytes, target, total_duration_ms, total_mbps} (rates in MiB/s, as the reference); after Ctrl-C the rates cover what was echoed so far, with interrupted: true',
  flags: { timeout: 'string' },
  interruptible: true,
  async run(ctx, args, usage) {
    maxPositionals(args, 2, usage);
    const targetText = positional(args, 0, 'target', usage);
    const sizeArg = args.positionals[1];
    const total = Math.max(1, Math.round((sizeArg === undefined ? 1 : parseSizeMb(sizeArg)) * 1024 * 1024));
    const timeoutMs = durationFlag(args, 'timeout', 120_000);
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = AbortSignal.any([timeout, ctx.interrupt]);
    return withDriver(ctx, async (d) => {
      const target = await resolveTarget(d, targetText);
      ctx.out.info(`BENCH ${targetLabel(target)} — sending ${formatBytes(total)} via echo port`);
      const conn = await d.dial(target.addr, ECHO_PORT, { timeoutMs, signal });
      const bar = ctx.out.progress('bench', total);
      const chunk = Buffer.alloc(BENCH_CHUNK);
      for (let i = 0; i < BENCH_CHUNK; i++) chunk[i] = i & 0xff;
      const start = performance.now();
      let sent = 0;
      let received = 0;
      let sendMs: number | undefined;
      const rate = (mibs: number, what = ''): string =>
        `${mibs.toFixed(1)} MiB/s${what}, ${mbitPerSecond(mibs).toFixed(1)} Mbit/s`;
      try {
        const echo = countUntil(
          conn,
          (n) => {
            received = n;
            bar.update(n);
            return n >= total;
          },
          Math.max(1, timeoutMs - (performance.now() - start)),
          'bench',
          ctx.interrupt,
        );
        echo.catch(() => undefined);
        while (sent < total) {
          if (ctx.interrupt.aborted) throw ctx.interrupt.reason;
          if (timeout.aborted) throw new PilotError('timeout', `bench timed out after ${formatMs(timeoutMs)}`);
          const piece = total - sent >= BENCH_CHUNK ? chunk : chunk.subarray(0, total - sent);
          sent += piece.length;
          if (!conn.write(piece)) await drained(conn, signal);
        }
        sendMs = performance.now() - start;
        const back = await echo;
        const totalMs = performance.now() - start;
        bar.finish();
        if (back < total) throw new PilotError('connection_failed', `echo ended after ${back} of ${total} bytes`);
        // The reference's fields: the resolved address, whole milliseconds (truncated), and both
        // rates over the exact durations for the requested size, in MiB/s.
        const data = {
          recv_bytes: back,
          send_duration_ms: Math.floor(sendMs),
          send_mbps: mibPerSecond(total, sendMs),
          sent_bytes: sent,
          target: formatAddr(target.addr),
          total_duration_ms: Math.floor(totalMs),
          total_mbps: mibPerSecond(total, totalMs),
        };
        const text = [
          `  Sent:     ${formatBytes(sent)} in ${formatDuration(sendMs)} (${rate(data.send_mbps)})`,
          `  Echoed:   ${formatBytes(back)} in ${formatDuration(totalMs)} (${rate(data.total_mbps, ' round-trip')})`,
        ].join('\n');
        return { data, text };
      } catch (err) {
        bar.finish();
        if (ctx.interrupt.aborted) {
          // What was measured until Ctrl-C: bytes written and echoed so far, and their rates.
          const totalMs = performance.now() - start;
          const sendDone = sendMs ?? totalMs;
          const data = {
            interrupted: true,
            recv_bytes: received,
            send_duration_ms: Math.floor(sendDone),
            send_mbps: mibPerSecond(sent, sendDone),
            sent_bytes: sent,
            target: formatAddr(target.addr),
            total_duration_ms: Math.floor(totalMs),
            total_mbps: mibPerSecond(received, totalMs),
          };
          const text = [
            `  interrupted after ${formatDuration(totalMs)} (${formatBytes(received)} of ${formatBytes(total)} echoed)`,
            `  Sent:     ${formatBytes(sent)} in ${formatDuration(sendDone)} (${rate(data.send_mbps)})`,
            `  Echoed:   ${formatBytes(received)} in ${formatDuration(totalMs)} (${rate(data.total_mbps, ' round-trip')})`,
          ].join('\n');
          return { data, text, interrupted: true };
        }
        const e = toPilotError(err);
        throw new PilotError(e.code, `${e.message} (sent ${sent} of ${total} bytes, received ${received})`, e.hint, {
          cause: err,
        });
      } finally {
        conn.destroy();
      }
    });
  },
};
