import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Identity } from '../../src/crypto/identity.js';
import {
  BeaconCore,
  DEFAULT_LIMITS,
  type BeaconCoreOptions,
  type NodeFacts,
  type Outgoing,
} from '../../src/beacon/core.js';
import type { Endpoint } from '../../src/beacon/endpoint.js';
import { beaconProofText, decodeBeacon, encodeBeacon, type BeaconMessage } from '../../src/protocol/beacon.js';

const ep = (port: number, ip = '198.51.100.1'): Endpoint => ({ ip, port });
const NOW = 1_800_000_000_000;

/** A beacon core with a directory of three registered nodes: 1 and 2 private and trusting each other, 3 public. */
function setup(extra: Partial<BeaconCoreOptions> = {}) {
  const ids = new Map<number, Identity>([1, 2, 3, 4].map((n) => [n, Identity.generate()]));
  const facts = new Map<number, NodeFacts>(
    [...ids].map(([n, id]) => [n, { publicKey: id.publicKey, isPublic: n === 3 }]),
  );
  const core = new BeaconCore({
    beaconId: 0,
    maxNodes: 1000,
    ttlMs: 300_000,
    maxNodesPerIp: 100,
    peerStaleMs: 30_000,
    limits: DEFAULT_LIMITS,
    directory: { facts: (n) => facts.get(n), trustPair: (a, b) => (a === 1 && b === 2) || (a === 2 && b === 1) },
    ...extra,
  });
  const send = (msg: BeaconMessage, from: Endpoint): Outgoing[] => core.handle(encodeBeacon(msg), from, NOW);
  const decoded = (out: Outgoing[]): BeaconMessage[] =>
    out.map((o) => {
      const d = decodeBeacon(o.bytes);
      assert.ok(d.ok);
      return d.value;
    });
  /** The whole exchange a pilot-ts daemon makes; returns the beacon's last answer. */
  const prove = (node: number, from: Endpoint, signer = ids.get(node) as Identity): BeaconMessage[] => {
    const [challenge] = decoded(send({ type: 'ProofRequest', nodeId: node }, from));
    assert.equal(challenge?.type, 'ProofChallenge');
    const cookie = (challenge as { cookie: Uint8Array }).cookie;
    return decoded(
      send({ type: 'Proof', nodeId: node, cookie, signature: signer.sign(beaconProofText(node, cookie)) }, from),
    );
  };
  return { core, send, decoded, prove, ids };
}

describe('beacon: proofs of node ids (pilot-ts extension)', () => {
  it('confirms a proof signed with the registered key and bound to the source endpoint', () => {
    const { core, prove, ids } = setup();
    assert.deepEqual(prove(1, ep(4000)), [{ type: 'ProofOk', nodeId: 1 }]);
    assert.equal(core.nodes.entry(1, NOW)?.proven, true);
    assert.deepEqual(prove(2, ep(4001), ids.get(1)), [], 'signed with another key');
    assert.equal(core.drops.proof_invalid, 1);
  });

  it('attack: a proof replayed from another endpoint, or with a forged cookie, is refused', () => {
    const { core, send, decoded, ids } = setup();
    const [challenge] = decoded(send({ type: 'ProofRequest', nodeId: 1 }, ep(4000)));
    const cookie = (challenge as { cookie: Uint8Array }).cookie;
    const proof: BeaconMessage = {
      type: 'Proof',
      nodeId: 1,
      cookie,
      signature: (ids.get(1) as Identity).sign(beaconProofText(1, cookie)),
    };
    assert.deepEqual(send(proof, ep(6666, '203.0.113.66')), []);
    assert.deepEqual(send({ ...proof, cookie: new Uint8Array(16) } as BeaconMessage, ep(4000)), []);
    assert.equal(core.drops.proof_invalid, 2);
    assert.equal(core.nodes.entry(1, NOW), undefined);
  });

  it('attack: a plain Discover cannot take a proven id, so relays claiming it are refused', () => {
    const { core, send, prove } = setup();
    prove(1, ep(4000));
    prove(2, ep(4001));
    const attacker = ep(6666, '203.0.113.66');
    const reply = send({ type: 'Discover', nodeId: 1 }, attacker);
    assert.equal(reply.length, 1, 'the STUN answer is still given');
    assert.equal(core.drops.id_claimed, 1);
    assert.deepEqual(core.nodes.get(1, NOW), ep(4000));
    assert.deepEqual(send({ type: 'Relay', sender: 1, dest: 2, frame: Buffer.from('PILA....') }, attacker), []);
    assert.equal(core.drops.relay_spoofed, 1);
    // The node's own Discover from its endpoint refreshes the entry and keeps the proof.
    send({ type: 'Discover', nodeId: 1 }, ep(4000));
    assert.equal(core.nodes.entry(1, NOW)?.proven, true);
    // A proof from a new endpoint (the node moved) moves it.
    prove(1, ep(5000));
    assert.deepEqual(core.nodes.get(1, NOW), ep(5000));
  });

  it('attack: punches reveal endpoints only as the registry would', () => {
    const { core, send, decoded, prove } = setup();
    prove(1, ep(4000));
    prove(2, ep(4001));
    send({ type: 'Discover', nodeId: 3 }, ep(4002));
    send({ type: 'Discover', nodeId: 4 }, ep(4003));
    const stranger = ep(6666, '203.0.113.66');
    assert.deepEqual(send({ type: 'PunchRequest', requester: 9, target: 1 }, stranger), [], 'an unregistered source');
    assert.deepEqual(
      send({ type: 'PunchRequest', requester: 4, target: 1 }, stranger),
      [],
      'a registered id from another endpoint',
    );
    assert.deepEqual(
      send({ type: 'PunchRequest', requester: 4, target: 1 }, ep(4003)),
      [],
      'an unproven requester, private target',
    );
    assert.equal(core.drops.punch_refused, 3);
    assert.equal(
      decoded(send({ type: 'PunchRequest', requester: 4, target: 3 }, ep(4003)))[0]?.type,
      'PunchCommand',
      'a public target',
    );
    assert.equal(
      send({ type: 'PunchRequest', requester: 1, target: 2 }, ep(4000)).length,
      2,
      'proven requester, trusted peer',
    );
    assert.deepEqual(
      send({ type: 'PunchRequest', requester: 1, target: 4 }, ep(4000)),
      [],
      'proven requester, untrusted private target',
    );
  });

  it('with requireProof, only proven nodes are recorded, relayed and punched for', () => {
    const { core, send, prove } = setup({ requireProof: true });
    send({ type: 'Discover', nodeId: 4 }, ep(4003));
    assert.equal(core.nodes.entry(4, NOW), undefined);
    prove(1, ep(4000));
    prove(2, ep(4001));
    assert.equal(send({ type: 'Relay', sender: 1, dest: 2, frame: Buffer.from('PILS....') }, ep(4000)).length, 1);
  });

  it('without a directory, proofs are not offered (as the reference, which ignores them)', () => {
    const core = new BeaconCore({
      beaconId: 0,
      maxNodes: 10,
      ttlMs: 1000,
      maxNodesPerIp: 10,
      peerStaleMs: 1000,
      limits: DEFAULT_LIMITS,
    });
    assert.deepEqual(core.handle(encodeBeacon({ type: 'ProofRequest', nodeId: 1 }), ep(4000), NOW), []);
    assert.equal(core.drops.proof_unsupported, 1);
  });
});
