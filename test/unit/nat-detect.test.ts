import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { NatProbeEndpoint, NatProbeReply } from '../../src/protocol/nat-probe.js';
import type { UdpEndpoint } from '../../src/tunnel/endpoint.js';
import { detectNat, type NatProber } from '../../src/tunnel/nat-detect.js';

const BEACON: UdpEndpoint = { host: '198.18.0.10', port: 9001, family: 4 };
const OTHER_PORT: NatProbeEndpoint = { ip: '198.18.0.10', port: 9002 };
const OTHER_ADDRESS: NatProbeEndpoint = { ip: '198.18.0.11', port: 9001 };
const PUBLIC: NatProbeEndpoint = { ip: '198.18.0.101', port: 40000 };

interface Behaviour {
  /** Which of the beacon's answers to the first probe get through (0 main, 1 other port, 2 other address). */
  readonly firstThrough: readonly (0 | 1 | 2)[];
  /** The endpoint the beacon's other sockets see us at (undefined: their probes go unanswered). */
  readonly seenByOthers?: (to: UdpEndpoint) => NatProbeEndpoint | undefined;
  readonly otherPort?: NatProbeEndpoint;
  readonly otherAddress?: NatProbeEndpoint;
  readonly observed?: NatProbeEndpoint;
}

/** A beacon client whose probes are answered as a NAT of the given behaviour lets through. */
function fakeClient(
  b: Behaviour | 'silent',
  observed?: string,
): { client: NatProber; sent: (UdpEndpoint | undefined)[] } {
  const sent: (UdpEndpoint | undefined)[] = [];
  const fake = {
    observed,
    natProbe(token: number, onReply: (reply: NatProbeReply, from: UdpEndpoint) => void, to?: UdpEndpoint): () => void {
      sent.push(to);
      if (b !== 'silent') {
        const base = { token, otherPort: b.otherPort, otherAddress: b.otherAddress };
        const replies: NatProbeReply[] = [];
        if (!to) for (const source of b.firstThrough) replies.push({ ...base, source, observed: b.observed ?? PUBLIC });
        else {
          const seen = b.seenByOthers?.(to);
          if (seen) replies.push({ ...base, source: 0, observed: seen });
        }
        setImmediate(() => {
          for (const r of replies) onReply(r, to ?? BEACON);
        });
      }
      return () => undefined;
    },
  };
  return { client: fake as unknown as NatProber, sent };
}

const same = (): NatProbeEndpoint => PUBLIC;
const perDestination = (to: UdpEndpoint): NatProbeEndpoint => ({
  ip: PUBLIC.ip,
  port: PUBLIC.port + (to.port === 9002 ? 1 : 2),
});
const full = { otherPort: OTHER_PORT, otherAddress: OTHER_ADDRESS };

describe('detectNat', () => {
  // The detection's sleeps are unref'd timers: hold the event loop open meanwhile.
  let hold: NodeJS.Timeout;
  before(() => (hold = setInterval(() => undefined, 1000)));
  after(() => clearInterval(hold));

  const cases: [string, Behaviour, string, string, string][] = [
    [
      'answers from every socket, same mapping',
      { firstThrough: [0, 1, 2], seenByOthers: same, ...full },
      'endpoint-independent',
      'endpoint-independent',
      'full-cone',
    ],
    [
      'answers from the main socket and other port only',
      { firstThrough: [0, 1], seenByOthers: same, ...full },
      'endpoint-independent',
      'address-dependent',
      'restricted-cone',
    ],
    [
      'answers from the main socket only',
      { firstThrough: [0], seenByOthers: same, ...full },
      'endpoint-independent',
      'address-and-port-dependent',
      'port-restricted-cone',
    ],
    [
      'other sockets see another port',
      { firstThrough: [0], seenByOthers: perDestination, ...full },
      'endpoint-dependent',
      'address-and-port-dependent',
      'symmetric',
    ],
    [
      'other sockets see another port, all answers through',
      { firstThrough: [0, 1, 2], seenByOthers: perDestination, ...full },
      'endpoint-dependent',
      'endpoint-independent',
      'symmetric',
    ],
    ['other sockets never answer', { firstThrough: [0], ...full }, 'unknown', 'address-and-port-dependent', 'unknown'],
    [
      'other port answers but the beacon has no other address',
      { firstThrough: [0, 1], seenByOthers: same, otherPort: OTHER_PORT },
      'endpoint-independent',
      'unknown',
      'unknown',
    ],
    [
      'a beacon with only another port, main answer only',
      { firstThrough: [0], seenByOthers: same, otherPort: OTHER_PORT },
      'endpoint-independent',
      'address-and-port-dependent',
      'port-restricted-cone',
    ],
    ['a beacon with no other socket', { firstThrough: [0] }, 'unknown', 'unknown', 'unknown'],
  ];
  for (const [name, behaviour, mapping, filtering, type] of cases) {
    it(`${name}: ${type}`, async () => {
      const { client } = fakeClient(behaviour);
      const r = await detectNat(client, BEACON, 5000, 30);
      assert.deepEqual({ mapping: r.mapping, filtering: r.filtering, type: r.type }, { mapping, filtering, type });
      assert.equal(r.publicEndpoint, `${PUBLIC.ip}:${PUBLIC.port}`);
    });
  }

  it('probes the other sockets only after the first answers, the other port at the beacon address we use', async () => {
    const { client, sent } = fakeClient({
      firstThrough: [0],
      seenByOthers: same,
      otherPort: { ip: '198.18.9.9', port: 9002 },
      otherAddress: OTHER_ADDRESS,
    });
    await detectNat(client, BEACON, 5000, 30);
    assert.equal(sent[0], undefined);
    const later = sent.filter((t) => t !== undefined).map((t) => `${t.host}:${t.port}`);
    assert.deepEqual([...new Set(later)].sort(), ['198.18.0.10:9002', '198.18.0.11:9001']);
  });

  it('a beacon that ignores probes (a Go beacon): unknown, with the endpoint Discover saw', async () => {
    const { client, sent } = fakeClient('silent', '198.18.0.101:40000');
    const r = await detectNat(client, BEACON, 5000, 30);
    assert.deepEqual(
      { type: r.type, mapping: r.mapping, filtering: r.filtering, publicEndpoint: r.publicEndpoint },
      { type: 'unknown', mapping: 'unknown', filtering: 'unknown', publicEndpoint: '198.18.0.101:40000' },
    );
    assert.equal(sent.length, 2, 'the probe is sent again once when unanswered');
  });

  it('no beacon: unknown without probing', async () => {
    const { client, sent } = fakeClient({ firstThrough: [0, 1, 2], ...full });
    const r = await detectNat(client, undefined, 5000, 30);
    assert.equal(r.type, 'unknown');
    assert.equal(sent.length, 0);
  });

  it('seen at one of our own addresses and our port: no NAT', async () => {
    const { client } = fakeClient({
      firstThrough: [0, 1, 2],
      seenByOthers: same,
      ...full,
      observed: { ip: '127.0.0.1', port: 5000 },
    });
    const r = await detectNat(client, BEACON, 5000, 30);
    assert.deepEqual(
      { type: r.type, mapping: r.mapping, filtering: r.filtering },
      { type: 'none', mapping: 'none', filtering: 'none' },
    );
    const moved = await detectNat(
      fakeClient({
        firstThrough: [0, 1, 2],
        seenByOthers: () => ({ ip: '127.0.0.1', port: 6000 }),
        ...full,
        observed: { ip: '127.0.0.1', port: 6000 },
      }).client,
      BEACON,
      5000,
      30,
    );
    assert.equal(moved.type, 'full-cone', 'our address at another port is a NAT (port translation)');
  });
});
