/**
 * The registry under test, in its own process for bench/registry.ts:
 *   node --expose-gc --import tsx bench/registry-server.ts <store.db> [port]
 * Reports `{type:'ready', port, startMs}` over IPC once it listens; answers `{type:'mem'}` with its
 * memory after a full collection, `{type:'cpu'}` with the CPU time it used so far; closes cleanly on SIGTERM or when the parent goes away.
 */
import { RegistryServer } from '../src/registry/server.js';

const storePath = process.argv[2];
if (storePath === undefined) throw new Error('usage: registry-server.ts <store.db> [port]');
const port = Number.parseInt(process.argv[3] ?? '0', 10) || 0;

const t0 = performance.now();
// Room for the load's connections of their own (one per node, as daemons hold), within the
// 20,000 descriptors a process gets on the benchmark machine.
const server = await RegistryServer.start({ host: '127.0.0.1', port, storePath, connectionLimits: { total: 19_000 } });
process.send?.({ type: 'ready', port: server.port, startMs: performance.now() - t0 });

const collect = (globalThis as { gc?: () => void }).gc;
process.on('message', (m: { type?: string }) => {
  if (m.type === 'cpu') {
    const cpu = process.cpuUsage();
    process.send?.({ type: 'cpu', cpuMs: (cpu.user + cpu.system) / 1000 });
  }
  if (m.type !== 'mem') return;
  collect?.();
  collect?.();
  const mem = process.memoryUsage();
  const cpu = process.cpuUsage();
  process.send?.({
    type: 'mem',
    rss: mem.rss,
    heapUsed: mem.heapUsed,
    external: mem.external,
    cpuMs: (cpu.user + cpu.system) / 1000,
  });
});
let closing = false;
const stop = (): void => {
  if (closing) return;
  closing = true;
  void server.close().finally(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('disconnect', stop);
