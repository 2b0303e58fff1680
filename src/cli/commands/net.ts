import { PilotError, toPilotError } from '../../errors.js';
import { formatAddr } from '../../protocol/address.js';
import type { JsonObject } from '../../protocol/json.js';
import {
  countFlag,
  durationFlag,
  invalid,
  maxPositionals,
  parsePort,
  positional,
  requireFlag,
  stringFlag,
} from '../args.js';
import { withDriver, type CommandResult, type CommandSpec } from '../command.js';
import type { CliContext, DaemonClient } from '../context.js';
import { consumeUntil, formatMs, readAll, readOnce } from '../stream-io.js';
import { resolveTarget, type Target } from '../target.js';

const STDIO_PORT = 1000;
const MAX_STDIN_MESSAGE = 1024 * 1024;

/** Dial, write one message, read one reply (the stdio convention), close. */
async function exchange(
  d: DaemonClient,
  target: Target,
  port: number,
  message: string,
  timeoutMs: number,
): Promise<JsonObject> {
  const conn = await d.dial(target.addr, port, { timeoutMs, data: Buffer.from(message) });
  try {
    const reply = await readOnce(conn, timeoutMs);
    return { port, response: reply.toString('utf8'), sent: message, target: formatAddr(target.addr) };
  } finally {
    conn.destroy();
  }
}

/** Full-duplex pipe: stdin to the connection, the connection to stdout, until both directions end. */
async function pipeMode(
  ctx: CliContext,
  d: DaemonClient,
  target: Target,
  port: number,
  timeoutMs: number,
): Promise<void> {
  const conn = await d.dial(target.addr, port, { timeoutMs });
  const stdin = ctx.stdin;
  await new Promise<void>((resolve, reject) => {
    let inputEnded = false;
    let outputEnded = false;
    const check = (): void => {
      if (inputEnded && outputEnded) resolve();
    };
    conn.on('data', (chunk: Buffer) => ctx.out.stdout.write(chunk));
    conn.once('end', () => {
      outputEnded = true;
      check();
    });
    conn.once('close', () => resolve());
    conn.once('error', (err) =>
      reject(new PilotError('connection_failed', `connection to ${target.text}:${port}: ${err.message}`)),
    );
    stdin.once('end', () => {
      inputEnded = true;
      check();
    });
    stdin.pipe(conn);
  }).finally(() => {
    stdin.unpipe(conn);
    conn.destroy();
  });
}

export const connect: CommandSpec = {
  name: 'connect',
  args: ['<node_id|address|hostname>', '[port=1000]', '[--message <text>]', '[--timeout <duration>]'],
  description:
    'Opens a stream to a port (default 1000). With --message: sends it, prints the first reply and closes. Without: piped standard input is sent and whatever comes back is written to standard output until both sides end (with --json, standard input is sent as one message).',
  returns: '{port, response, sent, target}',
  flags: { message: 'string', timeout: 'string' },
  async run(ctx, args, usage) {
    maxPositionals(args, 2, usage);
    const targetText = positional(args, 0, 'target', usage);
    const portArg = args.positionals[1];
    const port = portArg === undefined ? STDIO_PORT : parsePort(portArg);
    const timeoutMs = durationFlag(args, 'timeout', 30_000);
    let message = stringFlag(args, 'message');
    if (message === undefined && ctx.stdin.isTTY === true) {
      throw invalid(
        'no --message given and standard input is a terminal',
        'pass --message <text>, or pipe data in: echo hi | pilotctl connect <target>',
      );
    }
    if (message === undefined && ctx.out.json) {
      message = (await readAll(ctx.stdin, MAX_STDIN_MESSAGE)).toString('utf8').replace(/\r?\n$/, '');
    }
    const text = message;
    return withDriver(ctx, async (d) => {
      const target = await resolveTarget(d, targetText);
      if (text === undefined) {
        await pipeMode(ctx, d, target, port, timeoutMs);
        return undefined;
      }
      const data = await exchange(d, target, port, text, timeoutMs);
      return { data, text: String(data.response) };
    });
  },
};

export const send: CommandSpec = {
  name: 'send',
  args: ['<node_id|address|hostname>', '<port>', '--data <text>', '[--timeout <duration>]'],
  description: 'Opens a stream to a port, sends --data, prints the first reply and closes.',
  returns: '{port, response, sent, target}',
  flags: { data: 'string', timeout: 'string' },
  async run(ctx, args, usage) {
    maxPositionals(args, 2, usage);
    const targetText = positional(args, 0, 'target', usage);
    const port = parsePort(positional(args, 1, 'port', usage));
    const message = requireFlag(args, 'data', usage);
    const timeoutMs = durationFlag(args, 'timeout', 30_000);
    return withDriver(ctx, async (d) => {
      const data = await exchange(d, await resolveTarget(d, targetText), port, message, timeoutMs);
      return { data, text: data.response === '' ? `sent ${message.length} bytes, no reply` : String(data.response) };
    });
  },
};

/** A bounded receive that ended before `count` items: a failure, after the items were printed. */
function shortOf(what: string, got: number, count: number, timeoutMs: number): PilotError {
  return new PilotError(
    'timeout',
    `timed out after ${formatMs(timeoutMs)}: received ${got} of ${count} ${what}`,
    'raise --timeout, or check that the sender reaches this node (pilotctl peers)',
  );
}

export const recv: CommandSpec = {
  name: 'recv',
  args: ['<port>', '[--count <n>]', '[--timeout <duration>]'],
  description:
    'Listens on a port and accepts --count streams (default 1), reading one message from each. Receiving fewer than --count before --timeout (default 30s) is the error timeout; Ctrl-C prints what arrived and exits 130.',
  returns:
    '{messages: [{bytes, data, port, seq} or {error, port, seq}], timeout: false} (+interrupted: true after Ctrl-C)',
  flags: { count: 'string', timeout: 'string' },
  interruptible: true,
  async run(ctx, args, usage): Promise<CommandResult> {
    maxPositionals(args, 1, usage);
    const port = parsePort(positional(args, 0, 'port', usage));
    const count = countFlag(args, 'count', 1);
    const timeoutMs = durationFlag(args, 'timeout', 30_000);
    return withDriver(ctx, async (d): Promise<CommandResult> => {
      const listener = await d.listen(port);
      const messages: JsonObject[] = [];
      const deadline = Date.now() + timeoutMs;
      ctx.out.info(`listening on port ${port}`);
      let end: Awaited<ReturnType<typeof consumeUntil>>;
      try {
        end = await consumeUntil(
          listener,
          timeoutMs,
          async (conn) => {
            const seq = messages.length;
            try {
              const data = await readOnce(conn, Math.max(1, deadline - Date.now()), 'reading the message');
              messages.push({ bytes: data.length, data: data.toString('utf8'), port, seq });
              ctx.out.info(`[${seq}] ${data.toString('utf8')}`);
            } catch (err) {
              const message = toPilotError(err).message;
              messages.push({ error: message, port, seq });
              ctx.out.info(`[${seq}] error: ${message}`);
            } finally {
              conn.destroy();
            }
            return messages.length < count;
          },
          ctx.interrupt,
        );
      } finally {
        await listener.close().catch(() => undefined);
      }
      if (end === 'interrupted') {
        return {
          data: { interrupted: true, messages, timeout: false },
          text: `interrupted: ${messages.length} of ${count} messages`,
          interrupted: true,
        };
      }
      if (messages.length < count) throw shortOf('messages', messages.length, count, timeoutMs);
      return { data: { messages, timeout: false }, text: '' };
    });
  },
};

export const listen: CommandSpec = {
  name: 'listen',
  args: ['<port>', '[--count <n>]', '[--timeout <duration>]'],
  description:
    'Receives datagrams sent to a port (by "pilotctl sendto" or the SDK\'s sendTo). Without --count it streams one JSON object per line until Ctrl-C (exit 130) or --timeout (exit 0); with --count it stops after that many, and fewer before --timeout is the error timeout.',
  returns:
    'bounded: {messages: [{bytes, data, src_addr, src_port}], timeout: false} (+interrupted: true after Ctrl-C); unbounded: one {bytes, data, src_addr, src_port} per line',
  flags: { count: 'string', timeout: 'string' },
  interruptible: true,
  async run(ctx, args, usage): Promise<CommandResult | undefined> {
    maxPositionals(args, 1, usage);
    const port = parsePort(positional(args, 0, 'port', usage));
    const count = countFlag(args, 'count', 0, { min: 0 });
    const timeoutMs = durationFlag(args, 'timeout', 0, { allowZero: true });
    return withDriver(ctx, async (d): Promise<CommandResult | undefined> => {
      const ac = new AbortController();
      const messages: JsonObject[] = [];
      let end: Awaited<ReturnType<typeof consumeUntil>>;
      try {
        end = await consumeUntil(
          d.datagrams({ port, signal: ac.signal }),
          timeoutMs,
          (dg) => {
            if (dg.dstPort !== port) return true;
            const msg = {
              bytes: dg.data.length,
              data: dg.data.toString('utf8'),
              src_addr: formatAddr(dg.srcAddr),
              src_port: dg.srcPort,
            };
            if (count === 0) {
              ctx.out.ndjson(msg);
              return true;
            }
            messages.push(msg);
            ctx.out.info(`${msg.src_addr}:${msg.src_port}  ${msg.data}`);
            return messages.length < count;
          },
          ctx.interrupt,
        );
      } finally {
        ac.abort();
      }
      if (count === 0) return undefined;
      if (end === 'interrupted') {
        return {
          data: { interrupted: true, messages, timeout: false },
          text: `interrupted: ${messages.length} of ${count} datagrams`,
          interrupted: true,
        };
      }
      if (messages.length < count) throw shortOf('datagrams', messages.length, count, timeoutMs);
      return { data: { messages, timeout: false }, text: '' };
    });
  },
};

export const sendto: CommandSpec = {
  name: 'sendto',
  args: ['<node_id|address|hostname>', '<port>', '--data <text>'],
  description:
    'Sends one datagram (unreliable, no connection, no reply) to a port of a node, for "pilotctl listen" or an SDK datagram reader there. Success means the daemon sent it, not that it arrived; the receiver must trust this node.',
  returns: '{bytes, port, target}',
  flags: { data: 'string' },
  async run(ctx, args, usage) {
    maxPositionals(args, 2, usage);
    const targetText = positional(args, 0, 'target', usage);
    const port = parsePort(positional(args, 1, 'port', usage));
    const data = Buffer.from(requireFlag(args, 'data', usage));
    return withDriver(ctx, async (d) => {
      const target = await resolveTarget(d, targetText);
      await d.sendTo(target.addr, port, data);
      return {
        data: { bytes: data.length, port, target: formatAddr(target.addr) },
        text: `sent ${data.length} bytes to ${target.text} port ${port} (datagram: delivery is not confirmed)`,
      };
    });
  },
};
