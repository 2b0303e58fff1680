/**
 * An SDK application for the leak test, run in its own process so that it can be killed at any
 * point: `node --import tsx leak-client.ts <action> [args]` with PILOT_SOCKET set. It prints one
 * line when it reaches the phase the test wants to interrupt, then waits to be killed.
 *
 *   dial-abort <addr> <port> <ms>   dial, abort it with its AbortSignal after ms, print "aborted", stay connected
 *   dial-hang <addr> <port>         dial (to a node that does not answer), print "dialing"
 *   stream <addr> <port>            dial, write without end and never read, print "streaming" after 1 MiB
 *   subscribe <addr> <topic>        subscribe on the node's event stream, print "ready"
 *   watch                           wait for tasks of this node (a task worker), print "ready"
 */
import { Driver } from '../../src/sdk/driver.js';
import { subscribe } from '../../src/sdk/events.js';
import { Tasks } from '../../src/sdk/tasks.js';

const forever = (): Promise<never> => new Promise(() => setInterval(() => undefined, 60_000));

async function main(): Promise<void> {
  const [action, a1, a2, a3] = process.argv.slice(2);
  const d = await Driver.connect(process.env.PILOT_SOCKET);
  switch (action) {
    case 'dial-abort': {
      const ac = new AbortController();
      setTimeout(() => ac.abort(), Number(a3));
      await d.dial(String(a1), Number(a2), { signal: ac.signal }).then(
        () => console.log('connected'),
        (err: Error) => console.log(err.name === 'AbortError' ? 'aborted' : `failed ${err.message}`),
      );
      // Still connected to the daemon: the cancellation, not a disconnect, must release the dial.
      return forever();
    }
    case 'dial-hang':
      void d.dial(String(a1), Number(a2)).catch(() => undefined);
      console.log('dialing');
      return forever();
    case 'stream': {
      const conn = await d.dial(String(a1), Number(a2));
      conn.on('error', () => undefined);
      conn.pause();
      const chunk = Buffer.alloc(64 * 1024, 0x5a);
      let sent = 0;
      for (;;) {
        const more = conn.write(chunk);
        sent += chunk.length;
        if (sent === 1024 * 1024) console.log('streaming');
        if (!more) await new Promise((r) => conn.once('drain', r));
      }
    }
    case 'subscribe': {
      const sub = await subscribe(d, String(a1), String(a2));
      console.log('ready');
      for await (const _ of sub) {
        // consume
      }
      return forever();
    }
    case 'watch': {
      const tasks = new Tasks(d);
      const it = tasks.incoming()[Symbol.asyncIterator]();
      void it.next().catch(() => undefined);
      // The watch is open once the task list it reads first has come back.
      await tasks.tasks();
      console.log('ready');
      return forever();
    }
    default:
      throw new Error(`unknown action ${String(action)}`);
  }
}

main().catch((err: unknown) => {
  console.log(`error ${(err as Error).message}`);
  process.exit(1);
});
