/** What the lab does with each pair of agents: trust, first contact, ping, bench, stdio exchange. */
import { randomBytes } from 'node:crypto';
import type { AgentSpec, NatKind, NatLab } from './lab.js';

/** Two agents of each kind that pairs with itself; one of the others. */
export const LAB_AGENTS: readonly AgentSpec[] = [
  { name: 'public', kind: 'public' },
  { name: 'fullcone', kind: 'fullcone' },
  { name: 'restricted', kind: 'restricted' },
  { name: 'portrestricted', kind: 'portrestricted' },
  { name: 'portrestricted2', kind: 'portrestricted' },
  { name: 'symmetric', kind: 'symmetric' },
  { name: 'symmetric2', kind: 'symmetric' },
];

export interface PairSpec {
  readonly a: string;
  readonly b: string;
}

/** Every unordered pair of kinds; a kind with itself where the lab has two agents of it. */
export function labPairs(agents: readonly AgentSpec[] = LAB_AGENTS): PairSpec[] {
  const firstOf = new Map<NatKind, string>();
  const secondOf = new Map<NatKind, string>();
  for (const a of agents) {
    if (!firstOf.has(a.kind)) firstOf.set(a.kind, a.name);
    else if (!secondOf.has(a.kind)) secondOf.set(a.kind, a.name);
  }
  const kinds = [...firstOf.keys()];
  const pairs: PairSpec[] = [];
  for (let i = 0; i < kinds.length; i++) {
    for (let j = i; j < kinds.length; j++) {
      const ki = kinds[i] as NatKind;
      const kj = kinds[j] as NatKind;
      if (i === j) {
        const second = secondOf.get(ki);
        if (second) pairs.push({ a: firstOf.get(ki) as string, b: second });
      } else {
        pairs.push({ a: firstOf.get(ki) as string, b: firstOf.get(kj) as string });
      }
    }
  }
  return pairs;
}

/** The standard results: direct everywhere except where both sides' NATs defeat punching. */
export function expectedPath(a: NatKind, b: NatKind): 'direct' | 'relay' {
  const both = [a, b].sort().join('+');
  return both === 'symmetric+symmetric' || both === 'portrestricted+symmetric' ? 'relay' : 'direct';
}

export interface PairResult {
  a: string;
  b: string;
  kindA: NatKind;
  kindB: NatKind;
  connected: boolean;
  path: 'direct' | 'relay' | 'none';
  ttfb_ms: number | null;
  goodput_MBps: number | null;
  ping_ok: boolean;
  bench_ok: boolean;
  stdio_ok: boolean;
  error?: string;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, timeoutMs: number, fn: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await sleep(150);
  }
}

/**
 * Mutual trust through the registry relay (the agents are private: no tunnel exists before). With
 * `between`, runs it right after `b` approved, while both daemons start reaching each other.
 */
export async function trustPair(lab: NatLab, a: string, b: string, between?: () => Promise<void>): Promise<void> {
  const A = lab.agent(a);
  const B = lab.agent(b);
  await lab.ctl(a, ['handshake', String(B.nodeId), 'nat lab']);
  await until(`${b} to see ${a}'s request`, 20_000, async () => {
    const p = await lab.ctl(b, ['pending']);
    return (p.pending as { node_id: number }[] | null)?.some((x) => x.node_id === A.nodeId) ? true : undefined;
  });
  await lab.ctl(b, ['approve', String(A.nodeId)]);
  if (between) await between();
  await until(`${a} to trust ${b}`, 20_000, async () => {
    const t = await lab.ctl(a, ['trust']);
    return (t.trusted as { node_id: number }[] | null)?.some((x) => x.node_id === B.nodeId) ? true : undefined;
  });
}

/** The peer entry `a` holds for `b`: relay or direct. */
export async function pathOf(lab: NatLab, a: string, b: string): Promise<'direct' | 'relay' | 'none'> {
  const info = await lab.ctl(a, ['info']);
  const peer = (info.peer_list as { node_id: number; relay: boolean }[]).find((p) => p.node_id === lab.agent(b).nodeId);
  if (!peer) return 'none';
  return peer.relay ? 'relay' : 'direct';
}

/** 4 MiB through the echo service; MB/s (10^6 bytes) of payload sent and echoed, or an error. */
export async function bench(lab: NatLab, a: string, b: string, sizeMb = 4, timeout = '90s'): Promise<number> {
  const r = await lab.ctl(
    a,
    ['bench', String(lab.agent(b).nodeId), String(sizeMb), '--timeout', timeout],
    undefined,
    150_000,
  );
  const sent = Number(r.sent_bytes);
  const recv = Number(r.recv_bytes);
  if (sent !== sizeMb * 1024 * 1024 || recv !== sent) throw new Error(`bench ${a}→${b}: sent ${sent}, echoed ${recv}`);
  const ms = Number(r.total_duration_ms);
  return Math.round((sent / 1e6 / (ms / 1000)) * 100) / 100;
}

/** Standard input through a stream to the echo port and back to standard output, byte-exact. */
export async function stdioExchange(lab: NatLab, a: string, b: string): Promise<void> {
  const text = randomBytes(3000).toString('base64');
  const r = await lab.ctlRaw(a, ['connect', String(lab.agent(b).nodeId), '7', '--timeout', '30s'], `${text}\n`, 60_000);
  if (r.code !== 0 || r.stdout.trim() !== text)
    throw new Error(`stdio exchange ${a}→${b} failed (${r.code}): ${r.stderr.trim()} got ${r.stdout.length} bytes`);
}

/** First contact (dial → first echoed byte, in ms), then pings, a bench and a stdio exchange. */
export async function runPair(lab: NatLab, pair: PairSpec): Promise<PairResult> {
  const A = lab.agent(pair.a);
  const B = lab.agent(pair.b);
  const result: PairResult = {
    a: pair.a,
    b: pair.b,
    kindA: A.kind,
    kindB: B.kind,
    connected: false,
    path: 'none',
    ttfb_ms: null,
    goodput_MBps: null,
    ping_ok: false,
    bench_ok: false,
    stdio_ok: false,
  };
  try {
    // First contact: a pings (a dial to the echo port and one echo) the moment b has approved; the
    // approving daemon reaches out as well, so both race through resolve, punch and key exchange.
    await trustPair(lab, pair.a, pair.b, async () => {
      const first = await lab.ctl(
        pair.a,
        ['ping', String(B.nodeId), '--count', '1', '--timeout', '30s'],
        undefined,
        60_000,
      );
      const r0 = (first.results as { rtt_ms?: number; error?: string }[])[0];
      if (r0?.rtt_ms === undefined) throw new Error(`first ping ${pair.a}→${pair.b}: ${r0?.error ?? 'no result'}`);
      result.ttfb_ms = Math.round(r0.rtt_ms * 10) / 10;
      result.connected = true;
    });
    const pings = await lab.ctl(
      pair.a,
      ['ping', String(B.nodeId), '--count', '3', '--interval', '100ms', '--timeout', '30s'],
      undefined,
      60_000,
    );
    result.ping_ok = (pings.results as { rtt_ms?: number }[]).every((x) => x.rtt_ms !== undefined);
    result.goodput_MBps = await bench(lab, pair.a, pair.b);
    result.bench_ok = true;
    await stdioExchange(lab, pair.a, pair.b);
    result.stdio_ok = true;
    result.path = await pathOf(lab, pair.a, pair.b);
  } catch (err) {
    result.error = err instanceof Error ? err.message : String(err);
    if (result.connected) result.path = await pathOf(lab, pair.a, pair.b).catch(() => 'none' as const);
  }
  return result;
}

/** Runs `fn` over items, at most `limit` at a time, with no agent in two running items. */
export async function runPairs(lab: NatLab, pairs: readonly PairSpec[], limit = 3): Promise<PairResult[]> {
  const busy = new Set<string>();
  const results: PairResult[] = new Array<PairResult>(pairs.length);
  const waiting = pairs.map((p, i) => ({ p, i }));
  const running = new Set<Promise<void>>();
  while (waiting.length > 0 || running.size > 0) {
    const idx = running.size < limit ? waiting.findIndex(({ p }) => !busy.has(p.a) && !busy.has(p.b)) : -1;
    if (idx >= 0) {
      const [{ p, i }] = waiting.splice(idx, 1) as [{ p: PairSpec; i: number }];
      busy.add(p.a);
      busy.add(p.b);
      const job = runPair(lab, p).then((r) => {
        results[i] = r;
        busy.delete(p.a);
        busy.delete(p.b);
        running.delete(job);
      });
      running.add(job);
      continue;
    }
    await Promise.race(running);
  }
  return results;
}
