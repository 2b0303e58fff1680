/**
 * NAT lab benchmark: builds the network-namespace lab of test/netns (public segment, routers of four
 * NAT kinds), connects every pair of agents and prints, as its last line,
 * {"pairs":[{"a","b","connected","path","ttfb_ms","goodput_MBps"},…],"netem":{…}}.
 * Needs root, ip, nft and tc. PILOT_LAB_DIST points at another build's dist/.
 */
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { labSkipReason, NatLab } from '../test/netns/lab.js';
import { bench, LAB_AGENTS, labPairs, pathOf, runPairs, trustPair } from '../test/netns/pairs.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dist = process.env.PILOT_LAB_DIST ?? join(root, 'dist');

async function main(): Promise<void> {
  const skip = await labSkipReason();
  if (skip) {
    process.stdout.write(`${skip}\n`);
    process.stdout.write(`${JSON.stringify({ pairs: [], skipped: skip })}\n`);
    return;
  }
  const started = Date.now();
  const lab = await NatLab.start({ dist, agents: LAB_AGENTS });
  try {
    process.stdout.write(
      `lab up in ${Date.now() - started} ms: ${[...lab.agents.values()].map((a) => `${a.name}=${a.nodeId}`).join(' ')}\n`,
    );
    const results = await runPairs(lab, labPairs());
    for (const r of results) {
      process.stdout.write(
        `${r.a} ↔ ${r.b}: ${r.connected ? 'connected' : 'FAILED'} ${r.path} ttfb ${r.ttfb_ms ?? '-'} ms goodput ${r.goodput_MBps ?? '-'} MB/s${r.error ? ` (${r.error})` : ''}\n`,
      );
    }
    // 50 ms on every router's public side (100 ms between two NATed agents) and 1 % loss.
    const impaired = await lab.impair({ delayMs: 50, lossPct: 1 });
    const a = 'fullcone';
    const b = 'portrestricted';
    let netem: Record<string, unknown> = { a, b, delay_ms: impaired.delayed ? 50 : 0, loss_pct: 1 };
    if (!impaired.delayed) process.stdout.write('this kernel has no netem qdisc: loss only (nftables), no delay\n');
    try {
      if (!results.some((r) => (r.a === a && r.b === b) || (r.a === b && r.b === a))) await trustPair(lab, a, b);
      const goodput = await bench(lab, a, b, 4, '170s');
      netem = { ...netem, path: await pathOf(lab, a, b), goodput_MBps: goodput };
    } catch (err) {
      netem = { ...netem, error: String(err) };
    }
    await lab.impair(undefined);
    process.stdout.write(`impaired link ${a} → ${b}: ${JSON.stringify(netem)}\n`);
    process.stdout.write(`lab total ${Math.round((Date.now() - started) / 1000)} s\n`);
    const pairs = results.map((r) => ({
      a: r.kindA,
      b: r.kindB,
      connected: r.connected && r.bench_ok && r.stdio_ok && r.ping_ok,
      path: r.path,
      ttfb_ms: r.ttfb_ms,
      goodput_MBps: r.goodput_MBps,
    }));
    process.stdout.write(`${JSON.stringify({ pairs, netem })}\n`);
  } finally {
    await lab.stop();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
