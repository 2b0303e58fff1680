/**
 * A load thread of bench/registry.ts: holds its own registry connections (each from its own
 * loopback source address, so that the registry's per-IP request limit sees many sources) and
 * sends requests open-loop at a target rate, so that a slow registry shows as latency and as a
 * rate below target rather than slowing the sender down.
 *
 * Messages in: setup → ready; heartbeats / lookups → result; close → closed.
 */
import type { KeyObject } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import type { JsonObject } from '../src/protocol/json.js';
import { BodySigner, countError, loopbackIp, RegistryConn, sortedPercentile } from './registry-load.js';

export interface SetupCommand {
  readonly cmd: 'setup';
  /** Registry processes (sharing one store): connection i goes to ports[i % ports.length]. */
  readonly ports: readonly number[];
  /** Keys of the nodes this thread signs for, by slot, and their node ids. */
  readonly keys: readonly KeyObject[];
  readonly ids: readonly number[];
  readonly ipBlock: number;
  readonly conns: number;
  /**
   * The first `sessions` slots get a connection of their own, as a daemon has: bound by one signed
   * heartbeat at setup, then heartbeating unsigned (session heartbeats; 0 when the registry does
   * not offer them). The other slots share the `conns` connections and sign every heartbeat.
   */
  readonly sessions?: number;
}

export interface SetupResult {
  readonly type: 'ready';
  readonly sessions: number;
  /** Binding the session connections (open + one signed heartbeat each). */
  readonly bindS: number;
}

/** Session connections per source address (the registry allows 256 per IP). */
const SESSIONS_PER_IP = 200;
/** Source indices of session connections start here (the shared ones use 1‥conns). */
const SESSION_IP_BASE = 4096;
/** Session connections opened and bound at once. */
const BIND_CONCURRENCY = 256;

export interface HeartbeatCommand {
  readonly cmd: 'heartbeats';
  readonly rate: number;
  readonly durationMs: number;
}

export interface LookupCommand {
  readonly cmd: 'lookups';
  readonly rate: number;
  readonly durationMs: number;
  /** Every registered node id (lookup targets). */
  readonly lookupIds: Int32Array;
  /** Public nodes (resolve targets) and registered hostnames (resolve_hostname). */
  readonly resolveTargets: readonly number[];
  readonly hostnames: readonly string[];
}

export type WorkerCommand = SetupCommand | HeartbeatCommand | LookupCommand | { readonly cmd: 'close' };

export interface LoadResult {
  readonly type: 'result';
  readonly sent: number;
  readonly ok: number;
  readonly errors: Record<string, number>;
  readonly elapsedS: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  /** Requests not sent because a connection had too many unanswered (the registry fell behind). */
  readonly skipped: number;
}

/** Unanswered requests a connection may hold before the sender skips it. */
const MAX_IN_FLIGHT = 2000;
const TICK_MS = 5;
const DRAIN_MS = 15_000;

const port = parentPort;
if (port === null) throw new Error('registry-worker.ts runs as a worker thread');

let conns: RegistryConn[] = [];
let sessionConns: RegistryConn[] = [];
let signer: BodySigner | undefined;
let ids: readonly number[] = [];

async function setup(c: SetupCommand): Promise<SetupResult> {
  const s = new BodySigner(c.keys);
  signer = s;
  ids = c.ids;
  conns = await Promise.all(
    Array.from({ length: c.conns }, (_, i) =>
      RegistryConn.open(c.ports[i % c.ports.length] as number, loopbackIp(c.ipBlock, i + 1)),
    ),
  );
  // A connection must send its first request within 10 s of opening (the registry's frame deadline).
  await Promise.all(conns.map((conn) => conn.request({ type: 'lookup', node_id: ids[0] as number })));
  const sessions = Math.min(c.sessions ?? 0, ids.length);
  const t0 = performance.now();
  sessionConns = new Array<RegistryConn>(sessions);
  const errors = new Map<string, number>();
  let next = 0;
  const lane = async (): Promise<void> => {
    for (let k = next++; k < sessions; k = next++) {
      const conn = await RegistryConn.open(
        c.ports[k % c.ports.length] as number,
        loopbackIp(c.ipBlock, SESSION_IP_BASE + Math.floor(k / SESSIONS_PER_IP)),
      );
      sessionConns[k] = conn;
      countError(errors, (await conn.request(s.sign(k, { type: 'heartbeat', node_id: ids[k] as number }))).msg);
    }
  };
  await Promise.all(Array.from({ length: Math.min(BIND_CONCURRENCY, sessions) }, lane));
  if (errors.size > 0) throw new Error(`session heartbeats not bound: ${JSON.stringify(Object.fromEntries(errors))}`);
  return { type: 'ready', sessions, bindS: (performance.now() - t0) / 1000 };
}

/**
 * Sends `next()`'s requests at `rate` per second for `durationMs`, then waits for the replies.
 * A request signed by a node goes on the connection of its slot, as a daemon's go on its one
 * connection: the registry refuses a signed request older than one it accepted (replay).
 */
async function openLoop(
  rate: number,
  durationMs: number,
  next: () => { msg: JsonObject; slot?: number; conn?: RegistryConn },
): Promise<LoadResult> {
  const expected = Math.ceil((rate * durationMs) / 1000) + 16;
  const lat = new Float64Array(expected);
  const errors = new Map<string, number>();
  let sent = 0;
  let answered = 0;
  let ok = 0;
  let skipped = 0;
  let rr = 0;
  const outstanding = new Set<Promise<void>>();
  const t0 = performance.now();
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const elapsed = performance.now() - t0;
      const due = Math.min(expected, Math.floor((rate * Math.min(elapsed, durationMs)) / 1000));
      while (sent + skipped < due) {
        const picked = next();
        const { msg, slot } = picked;
        const conn = picked.conn ?? (conns[(slot ?? rr++) % conns.length] as RegistryConn);
        if (conn.inFlight >= MAX_IN_FLIGHT) {
          skipped++;
          continue;
        }
        sent++;
        const p = conn.request(msg).then(
          (r) => {
            if (!countError(errors, r.msg)) ok++;
            lat[answered++] = r.ms;
          },
          () => {
            errors.set('failed', (errors.get('failed') ?? 0) + 1);
          },
        );
        outstanding.add(p);
        void p.finally(() => outstanding.delete(p));
      }
      if (elapsed >= durationMs) {
        clearInterval(timer);
        resolve();
      }
    }, TICK_MS);
  });
  let drainTimer: NodeJS.Timeout | undefined;
  await Promise.race([Promise.all(outstanding), new Promise((r) => (drainTimer = setTimeout(r, DRAIN_MS)))]);
  clearTimeout(drainTimer);
  const elapsedS = (performance.now() - t0) / 1000;
  const sorted = lat.subarray(0, answered).sort();
  return {
    type: 'result',
    sent,
    ok,
    errors: Object.fromEntries(errors),
    elapsedS,
    p50: sortedPercentile(sorted, 50),
    p99: sortedPercentile(sorted, 99),
    max: sortedPercentile(sorted, 100),
    skipped,
  };
}

function heartbeats(c: HeartbeatCommand): Promise<LoadResult> {
  const s = signer as BodySigner;
  let slot = 0;
  return openLoop(c.rate, c.durationMs, () => {
    const i = slot++ % ids.length;
    const session = sessionConns[i];
    if (session !== undefined) return { msg: { type: 'heartbeat', node_id: ids[i] as number }, conn: session };
    return { msg: s.sign(i, { type: 'heartbeat', node_id: ids[i] as number }), slot: i };
  });
}

function lookups(c: LookupCommand): Promise<LoadResult> {
  const s = signer as BodySigner;
  const pick = <T>(list: ArrayLike<T>): T => list[Math.floor(Math.random() * list.length)] as T;
  return openLoop(c.rate, c.durationMs, (): { msg: JsonObject; slot?: number } => {
    const r = Math.random();
    if (r < 0.15 && c.resolveTargets.length > 0) {
      const slot = Math.floor(Math.random() * ids.length);
      return {
        msg: s.sign(slot, { type: 'resolve', node_id: pick(c.resolveTargets), requester_id: ids[slot] as number }),
        slot,
      };
    }
    if (r < 0.3 && c.hostnames.length > 0) return { msg: { type: 'resolve_hostname', hostname: pick(c.hostnames) } };
    return { msg: { type: 'lookup', node_id: pick(c.lookupIds) } };
  });
}

port.on('message', (c: WorkerCommand) => {
  const reply = (p: Promise<unknown>): void => {
    p.then(
      (value) => port.postMessage(value),
      (err: unknown) => port.postMessage({ type: 'error', message: err instanceof Error ? err.message : String(err) }),
    );
  };
  switch (c.cmd) {
    case 'setup':
      reply(setup(c));
      break;
    case 'heartbeats':
      reply(heartbeats(c));
      break;
    case 'lookups':
      reply(lookups(c));
      break;
    case 'close':
      for (const conn of [...conns, ...sessionConns]) conn.close();
      port.postMessage({ type: 'closed' });
      port.close();
      break;
  }
});
