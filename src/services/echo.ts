import type { PilotConn, PilotListener, PilotNetwork, RawConn, RawConnEvents } from '../pilot-net.js';

export const ECHO_PORT = 7;

/** Bytes taken from a connection per read. */
const READ_CHUNK = 64 * 1024;

/**
 * Port 7: every byte received is written back; the echo ends when the peer finishes sending. On a
 * network that runs its connections in this process it works on them directly (`serveRaw`): a
 * ping is one such connection, and its echo is on the path of every round trip measured.
 */
export async function startEcho(net: PilotNetwork, port = ECHO_PORT): Promise<PilotListener> {
  if (net.serveRaw) return net.serveRaw(port, rawEcho);
  const listener = await net.listen(port);
  listener.on('connection', (conn: PilotConn) => streamEcho(conn));
  return listener;
}

/**
 * What is read goes back as the send buffer takes it; while it is full nothing more is read, so
 * the receive window closes on the sender as it would through `pipe`.
 */
function rawEcho(conn: RawConn): RawConnEvents {
  let held: Uint8Array | null = null;
  let peerDone = false;
  let ended = false;
  const pump = (): void => {
    for (;;) {
      if (held) {
        const taken = conn.write(held);
        if (taken < held.length) {
          held = held.subarray(taken);
          return;
        }
      }
      held = conn.read(READ_CHUNK);
      if (!held) break;
    }
    if (peerDone && !ended) {
      ended = true;
      conn.end();
    }
  };
  return {
    readable: pump,
    writable: pump,
    end: () => {
      peerDone = true;
      pump();
    },
  };
}

/**
 * What `conn.pipe(conn)` does, without its bookkeeping, and starting with the bytes that came with
 * the SYN at once rather than on the next tick.
 */
function streamEcho(conn: PilotConn): void {
  const back = (chunk: Buffer): void => {
    if (!conn.write(chunk)) conn.pause();
  };
  conn.on('error', () => conn.destroy());
  conn.on('drain', () => conn.resume());
  conn.on('end', () => conn.end());
  for (let chunk: Buffer | null = conn.read(); chunk !== null; chunk = conn.read()) back(chunk);
  conn.on('data', back);
}
