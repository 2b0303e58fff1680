import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { encodePils } from '../../src/protocol/tunnel.js';
import { encodePilpFrom } from '../../src/tunnel/beacon-session.js';
import { formatEndpoint, type UdpEndpoint } from '../../src/tunnel/endpoint.js';
import * as policy from '../../src/tunnel/policy.js';
import { SimTunnelNode } from './tunnel-node.js';
import { deliveredShare, describeRun, recoveryAfter, steadyTraffic } from './tunnel-traffic.js';
import { SimWorld, type NatFiltering } from './tunnel-world.js';

/**
 * Tunnel cores over a simulated internet (virtual clock, seeded PRNG, the real beacon core, NATs):
 * each case breaks a working session the way the real world does and asserts that traffic comes
 * back within a bound set by the tunnel's timings. SIM_SEEDS=n runs n seeds per case.
 */

const FIRST_SEED = 7;
const SEEDS = Array.from({ length: Math.max(1, Number(process.env.SIM_SEEDS ?? 1)) }, (_, i) => FIRST_SEED + i);
const EVERY_MS = 50;
const A_PUBLIC = '203.0.113.10';
const B_PUBLIC = '203.0.113.20';
const ep = (host: string, port: number): UdpEndpoint => ({ host, port, family: 4 });

interface Pair {
  world: SimWorld;
  a: SimTunnelNode;
  b: SimTunnelNode;
  /** When the session was up and steady traffic had flowed for a while. */
  t: number;
  why: (name: string, seed: number) => string;
}

/** Two nodes behind NATs, registered at the beacon; `a` reaches `b`, both send every 50 ms until `trafficMs`. */
function session(seed: number, filtering: [NatFiltering, NatFiltering], trafficMs: number, loss = 0.01): Pair {
  const world = new SimWorld({ seed, loss });
  const a = new SimTunnelNode(world, 'a', 101, ep('10.0.0.2', 4000), world.nat(A_PUBLIC, filtering[0]));
  const b = new SimTunnelNode(world, 'b', 102, ep('10.0.1.2', 4000), world.nat(B_PUBLIC, filtering[1]));
  const t0 = world.now;
  a.start();
  b.start();
  world.runUntil(t0 + 500);
  a.connect(b);
  steadyTraffic(world, a, b, EVERY_MS, world.now + trafficMs);
  world.runUntil(t0 + 5000);
  const t = world.now;
  // The session works before anything is broken.
  assert.ok(deliveredShare(b.arrivals.get(a.nodeId), t - 3000, t, EVERY_MS) > 0.9, 'a → b before the event');
  assert.ok(deliveredShare(a.arrivals.get(b.nodeId), t - 3000, t, EVERY_MS) > 0.9, 'b → a before the event');
  return { world, a, b, t, why: (name, s) => describeRun(name, s, world, [a, b]) };
}

/** Packets both ways arrive within `boundMs` of `since`, and nearly all of them from then on until `until`. */
function assertRecovered(p: Pair, since: number, boundMs: number, until: number, label: string, seed: number): void {
  const { a, b } = p;
  const ab = recoveryAfter(b.arrivals.get(a.nodeId), since);
  const ba = recoveryAfter(a.arrivals.get(b.nodeId), since);
  const why = p.why(label, seed);
  assert.ok(ab <= boundMs, `a → b back after ${ab} ms (bound ${boundMs})\n${why}`);
  assert.ok(ba <= boundMs, `b → a back after ${ba} ms (bound ${boundMs})\n${why}`);
  const from = since + boundMs + 500;
  for (const [name, arrivals] of [
    ['a → b', b.arrivals.get(a.nodeId)],
    ['b → a', a.arrivals.get(b.nodeId)],
  ] as const) {
    // 1% loss per hop, two hops through the relay, over a few seconds of packets.
    const share = deliveredShare(arrivals, from, until, EVERY_MS);
    assert.ok(share > 0.9, `${name}: ${Math.round(share * 100)}% delivered after recovery\n${why}`);
  }
}

describe('tunnel simulator: recovery', () => {
  for (const seed of SEEDS) {
    test(`rekey: a peer renews its key; the side holding the stale one renegotiates (seed ${seed})`, () => {
      const p = session(seed, ['port-restricted', 'port-restricted'], 20_000);
      const { world, a, b, t } = p;
      // b comes back with a new X25519 key at the same address and does not contact a itself:
      // only a's frames, sealed under the stale key, can start the renegotiation.
      b.restart();
      world.runUntil(t + 15_000);
      // A no-context frame is answered with b's key at once; one round trip and a's PILA later, both
      // ends agree (a lost key exchange is offered again after RECOVERY_INTERVAL_MS).
      assertRecovered(p, t, policy.RECOVERY_INTERVAL_MS + 500, t + 14_000, 'rekey', seed);
      const rekeyed = a.eventsOf('established').filter((e) => e.event.args[0].rekeyed);
      assert.equal(rekeyed.length, 1, `a took b's new key once\n${p.why('rekey', seed)}`);
    });

    test(`relay switch: the direct path is lost, traffic goes through the beacon, then direct again (seed ${seed})`, () => {
      const p = session(seed, ['port-restricted', 'port-restricted'], 40_000);
      const { world, a, b, t } = p;
      world.block(A_PUBLIC, B_PUBLIC, true);
      world.runUntil(t + 15_000);
      // Silence for SILENCE_MS, then SILENCE_RELAY_MS of checks (ticks of TICK_MS) before relaying.
      const relayBound = policy.SILENCE_MS + policy.SILENCE_RELAY_MS + 2 * policy.TICK_MS + 500;
      assertRecovered(p, t, relayBound, t + 15_000, 'relay', seed);
      for (const n of [a, b]) assert.equal(n.core.peers()[0]?.relay, true, `${n.name} relays\n${p.why('relay', seed)}`);
      const relayedAt = Math.max(...[a, b].map((n) => n.eventsOf('relay-activated')[0]?.at ?? Number.NaN));
      const opened = world.now;
      world.block(A_PUBLIC, B_PUBLIC, false);
      world.runUntil(opened + 20_000);
      // The direct path is probed 2, 6, 14, 30 s after relaying (doubling from PROBE_FIRST_MS): the
      // next probe after reopening comes at most one back-off step later.
      const sinceRelay = opened - relayedAt;
      let next = policy.PROBE_FIRST_MS;
      let step = policy.PROBE_FIRST_MS * 2;
      while (next < sinceRelay) {
        next += step;
        step = Math.min(step * 2, policy.PROBE_CAP_MS);
      }
      const directBound = next - sinceRelay + 1000;
      for (const n of [a, b]) {
        const up = n.eventsOf('direct-upgraded').find((e) => e.at >= opened);
        assert.ok(
          up && up.at - opened <= directBound,
          `${n.name} direct again within ${directBound} ms\n${p.why('relay', seed)}`,
        );
        assert.equal(n.core.peers()[0]?.relay, false, `${n.name} stays direct\n${p.why('relay', seed)}`);
        assert.equal(n.eventsOf('relay-activated').filter((e) => e.at >= opened).length, 0, `${n.name} does not flap`);
      }
      assertRecovered(p, opened, directBound, opened + 19_000, 'relay (direct again)', seed);
    });

    for (const filtering of ['endpoint-independent', 'port-restricted'] as const) {
      test(`NAT rebinding: a's public endpoint changes, b follows only authenticated frames (${filtering} at b, seed ${seed})`, () => {
        const p = session(seed, ['port-restricted', filtering], 20_000);
        const { world, a, b, t } = p;
        const before = a.nat?.publicOf(a.local);
        a.nat?.rebind(a.local);
        // Someone else claims to be a from elsewhere: a forged sealed frame and a punch with a's id.
        const attacker = ep('192.0.2.66', 5555);
        const forged = encodePils({
          senderNode: a.nodeId,
          nonce: new Uint8Array(12).fill(9),
          sealed: new Uint8Array(40),
        });
        for (let i = 0; i < 20; i++)
          world.at(t + i * 200, () => {
            const to = b.nat?.publicOf(b.local) as UdpEndpoint;
            world.send(attacker, undefined, to, forged);
            world.send(attacker, undefined, to, encodePilpFrom(a.nodeId));
          });
        world.runUntil(t + 15_000);
        const after = a.nat?.publicOf(a.local);
        assert.ok(before && after && after.port !== before.port, 'the NAT gave a a new port');
        // Behind a filtering NAT at b, a's silence checks find the new endpoint through the beacon
        // and punch again: SILENCE_MS, then a check (one more if a datagram of it was lost), a round
        // trip to the beacon and the punch.
        const bound = filtering === 'endpoint-independent' ? 500 : policy.SILENCE_MS + 3 * policy.PATH_CHECK_MS + 500;
        assertRecovered(p, t, bound, t + 14_000, `rebinding ${filtering}`, seed);
        const moves = b
          .eventsOf('endpoint-changed')
          .filter((e) => e.at > t)
          .map((e) => e.event.args[0].endpoint);
        assert.deepEqual(
          moves,
          [formatEndpoint(after)],
          `b moved a's endpoint only to a's real one\n${p.why('rebind', seed)}`,
        );
        assert.equal(b.core.peers()[0]?.endpoint, formatEndpoint(after));
      });
    }

    test(`trust revoked and given again while a revocation is late: keys flow again at once (seed ${seed})`, () => {
      const p = session(seed, ['port-restricted', 'port-restricted'], 20_000, 0);
      const { world, a, b, t } = p;
      // a revokes b and trusts it again at once (its tunnel forgets b and exchanges keys anew);
      // b handles the revocation only after that exchange, drops a's context, and is given trust
      // again a moment later. Both keep their keys: only the PILAs in between can bring b's back.
      a.core.removePeer(b.nodeId, world.now);
      a.connect(b);
      world.runUntil(t + 80);
      b.core.removePeer(a.nodeId, world.now);
      world.runUntil(t + 120);
      b.connect(a);
      world.runUntil(t + 5_000);
      // A few round trips (20 ms each way), not a PILA interval of a second.
      assertRecovered(p, t + 120, 300, t + 4_900, 'late revocation', seed);
    });

    test(`peer restart: b restarts on a new port with a new key; a finds it and traffic resumes (seed ${seed})`, () => {
      const p = session(seed, ['port-restricted', 'port-restricted'], 20_000);
      const { world, a, b, t } = p;
      // A new process on a new socket: a new NAT mapping, a new key, no peers. It registers with
      // the beacon and waits; a, still sealing to the old address under the old key, must find it.
      b.restart(ep('10.0.1.2', 4001));
      world.runUntil(t + 15_000);
      // a's silence checks (SILENCE_MS, then every PATH_CHECK_MS) ask the beacon to punch; b's punch
      // carries its id, a probes it there, b answers with its new key.
      const bound = policy.SILENCE_MS + 3 * policy.PATH_CHECK_MS + 500;
      assertRecovered(p, t, bound, t + 14_000, 'restart', seed);
      const rekeyed = a.eventsOf('established').filter((e) => e.event.args[0].rekeyed);
      assert.equal(rekeyed.length, 1, `a took b's new key\n${p.why('restart', seed)}`);
      assert.equal(a.core.peers()[0]?.endpoint, formatEndpoint(b.nat?.publicOf(b.local) as UdpEndpoint));
    });
  }
});
