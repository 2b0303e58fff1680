import type { PilotConn, PilotListener, PilotNetwork } from '../pilot-net.js';

export const ECHO_PORT = 7;

/** Port 7: every byte received is written back; the echo ends when the peer finishes sending. */
export async function startEcho(net: PilotNetwork, port = ECHO_PORT): Promise<PilotListener> {
  const listener = await net.listen(port);
  listener.on('connection', (conn: PilotConn) => {
    conn.on('error', () => conn.destroy());
    conn.pipe(conn);
  });
  return listener;
}
