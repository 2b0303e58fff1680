/** Phases of bench:registry beside the main sequence: new daemons, a flooding source, a restart. */
import type { JsonObject } from '../src/protocol/json.js';
import { type BodySigner, loopbackIp, RegistryConn } from './registry-load.js';
import { type Keys, RegistryProcess } from './registry-procs.js';

/** Source address blocks (127.<block>.x.y), one per role, so that roles never share a per-IP limit. */
export const BLOCK = {
  register: 10,
  changes: 30,
  heartbeat: 31,
  lookup: 32,
  fresh: 33,
  flood: 34,
  probe: 35,
  warmup: 36,
} as const;

export const registerMsg = (signer: BodySigner, keys: Keys, slot: number): JsonObject =>
  signer.sign(slot, { type: 'register', listen_addr: '0.0.0.0:37736', public_key: keys.publicKeys[slot] as string });

/** New daemons registering while the load runs, one every `everyMs`: their reply latencies. */
export function freshRegistrations(
  ports: readonly number[],
  keys: Keys,
  signer: BodySigner,
  firstSlot: number,
  everyMs: number,
  untilMs: number,
): Promise<number[]> {
  const samples: number[] = [];
  let slot = firstSlot;
  let source = 0;
  const t0 = performance.now();
  return new Promise((resolve) => {
    const one = async (): Promise<void> => {
      if (performance.now() - t0 > untilMs || slot >= keys.privateKeys.length) {
        resolve(samples);
        return;
      }
      const conn = await RegistryConn.open(
        ports[source % ports.length] as number,
        loopbackIp(BLOCK.fresh, ++source),
      ).catch(() => undefined);
      if (conn !== undefined) {
        const reply = await conn.request(registerMsg(signer, keys, slot++)).catch(() => undefined);
        if (reply !== undefined && reply.msg.type === 'register_ok') samples.push(reply.ms);
        conn.close();
      }
      setTimeout(() => void one(), everyMs);
    };
    void one();
  });
}

/** One source address pipelining lookups over several connections as fast as it can. */
export async function flood(
  port: number,
  ids: readonly number[],
  ms: number,
): Promise<{ sent: number; limited: number }> {
  const conns = await Promise.all(Array.from({ length: 8 }, () => RegistryConn.open(port, loopbackIp(BLOCK.flood, 1))));
  let sent = 0;
  let limited = 0;
  const until = performance.now() + ms;
  await Promise.all(
    conns.map(async (conn) => {
      const window = async (): Promise<void> => {
        while (performance.now() < until) {
          sent++;
          const reply = await conn
            .request({ type: 'lookup', node_id: ids[sent % ids.length] as number })
            .catch(() => undefined);
          if (reply === undefined) return;
          if (reply.msg.code === 'rate_limited') limited++;
        }
      };
      await Promise.all(Array.from({ length: 32 }, window));
    }),
  );
  for (const c of conns) c.close();
  return { sent, limited };
}

/** Time from spawning a registry on a store until it answers a lookup. */
export async function restart(
  storePath: string,
  port: number,
  probeId: number,
): Promise<{ registry: RegistryProcess; seconds: number; startS: number }> {
  const t0 = performance.now();
  const pending = RegistryProcess.start(storePath, port);
  let answered = false;
  while (!answered) {
    if (performance.now() - t0 > 60_000) throw new Error('the restarted registry did not answer within 60 s');
    const conn = await RegistryConn.open(port, loopbackIp(BLOCK.probe, 1), 1000).catch(() => undefined);
    if (conn === undefined) {
      await new Promise((r) => setTimeout(r, 10));
      continue;
    }
    const reply = await conn.request({ type: 'lookup', node_id: probeId }).catch(() => undefined);
    conn.close();
    answered = reply?.msg.type === 'lookup_ok';
  }
  const seconds = (performance.now() - t0) / 1000;
  const registry = await pending;
  return { registry, seconds, startS: registry.startS };
}
