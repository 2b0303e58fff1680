import { createServer, type Server } from 'node:http';
import { PilotError, toPilotError } from '../errors.js';

export interface HealthServer {
  readonly port: number;
  close(): Promise<void>;
}

/** `GET /healthz` → `200 ok` while `healthy()` holds, else `503 unhealthy`; anything else 404. */
export async function startHealthServer(host: string, port: number, healthy: () => boolean): Promise<HealthServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (req.method !== 'GET' || path !== '/healthz') {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
      return;
    }
    const ok = healthy();
    res.writeHead(ok ? 200 : 503, { 'Content-Type': 'text/plain' }).end(ok ? 'ok' : 'unhealthy');
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: host === '' ? undefined : host, port }, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    throw new PilotError(
      'unavailable',
      `health endpoint cannot listen on ${host}:${port}: ${toPilotError(err).message}`,
      undefined,
      { cause: err },
    );
  }
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
