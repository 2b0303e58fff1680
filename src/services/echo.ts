import type { PilotConn, PilotListener, PilotNetwork } from '../pilot-net.js';

export const ECHO_PORT = 7;

/** Port 7: every byte received is written back; the echo ends when the peer finishes sending. */
export async function startEcho(net: PilotNetwork, port = ECHO_PORT): Promise<PilotListener> {
  const listener = await net.listen(port);
  listener.on('connection', (conn: PilotConn) => echo(conn));
  return listener;
}

/**
 * What `conn.pipe(conn)` does, without its bookkeeping, and starting with the bytes that came with
 * the SYN at once rather than on the next tick: a ping is one such connection, its echo on the
 * path of every round trip measured.
 */
function echo(conn: PilotConn): void {
  const back = (chunk: Buffer): void => {
    if (!conn.write(chunk)) conn.pause();
  };
  conn.on('error', () => conn.destroy());
  conn.on('drain', () => conn.resume());
  conn.on('end', () => conn.end());
  for (let chunk: Buffer | null = conn.read(); chunk !== null; chunk = conn.read()) back(chunk);
  conn.on('data', back);
}
