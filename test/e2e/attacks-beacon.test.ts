import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { startRendezvous, type Rendezvous } from '../../src/beacon/rendezvous.js';
import { Identity } from '../../src/crypto/identity.js';
import { encodeBeacon } from '../../src/protocol/beacon.js';
import { RegistryClient } from '../../src/registry/client.js';
import { RegistryKeys } from '../../src/registry-keys.js';
import { Tunnel } from '../../src/tunnel/index.js';
import { RawSocket } from './tunnel-harness.js';
import { waitFor } from '../wait.js';

/** Hostile clients of a real rendezvous' beacon, next to a real tunnel that proves its id. */
describe('attacks on the beacon', () => {
  const closers: (() => Promise<void> | void)[] = [];
  after(async () => {
    for (const close of closers.reverse()) await close();
  });

  async function node(rdv: Rendezvous): Promise<{ tunnel: Tunnel; id: number }> {
    const identity = Identity.generate();
    const registry = new RegistryClient({ address: `127.0.0.1:${rdv.registryPort}`, identity });
    closers.push(() => registry.close());
    const tunnel = await Tunnel.open({
      listen: '127.0.0.1:0',
      identity,
      beacon: `127.0.0.1:${rdv.beaconPort}`,
      keys: new RegistryKeys(async () => undefined),
    });
    closers.push(() => tunnel.close());
    const reply = await registry.register({ listenAddr: `127.0.0.1:${tunnel.localPort}` });
    const id = reply.node_id as number;
    tunnel.setNodeId(id);
    tunnel.registerWithBeacon();
    await waitFor(() => tunnel.provenAtBeaconWithin(60_000), 3000, 'proof confirmed');
    return { tunnel, id };
  }

  it('a daemon proves its id; a Discover from elsewhere cannot take it, nor relay in its name', async () => {
    const rdv = await startRendezvous({
      registryHost: '127.0.0.1',
      registryPort: 0,
      beaconHost: '127.0.0.1',
      beaconPort: 0,
      storePath: ':memory:',
    });
    closers.push(() => rdv.close());
    const victim = await node(rdv);
    const other = await node(rdv);
    const attacker = await RawSocket.open();
    closers.push(() => attacker.close());
    await attacker.send(encodeBeacon({ type: 'Discover', nodeId: victim.id }), rdv.beaconPort);
    await waitFor(() => attacker.received.length === 1, 1000, 'STUN answer');
    await attacker.send(
      encodeBeacon({ type: 'Relay', sender: victim.id, dest: other.id, frame: Buffer.from('PILS-forged') }),
      rdv.beaconPort,
    );
    await attacker.send(encodeBeacon({ type: 'PunchRequest', requester: victim.id, target: other.id }), rdv.beaconPort);
    await waitFor(() => rdv.beacon.stats().drops.punch_refused === 1, 1000, 'punch refused');
    const stats = rdv.beacon.stats();
    assert.equal(stats.drops.id_claimed, 1);
    assert.equal(stats.drops.relay_spoofed, 1);
    assert.equal(stats.relayed, 0);
    assert.equal(attacker.received.length, 1, 'nothing but the STUN answer reached the attacker');
  });
});
