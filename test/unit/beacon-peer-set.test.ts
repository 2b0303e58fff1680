import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BeaconCore, DEFAULT_LIMITS, type Outgoing } from '../../src/beacon/core.js';
import { checkDiscoverySettings } from '../../src/beacon/discovery.js';
import { PeerDirectory } from '../../src/beacon/peer-directory.js';
import {
  advertisedEndpoint,
  derivedAdvertiseAddr,
  discoveredPeerSet,
  parseBeaconAddr,
  parseBeaconList,
  usablePeerIp,
} from '../../src/beacon/peer-set.js';
import { decodeBeacon, encodeBeacon } from '../../src/protocol/beacon.js';

const ep = (ip: string, port = 9001): { ip: string; port: number } => ({ ip, port });

describe('beacon_list parsing', () => {
  it('keeps the other beacons and leaves out its own id', () => {
    const reply = {
      type: 'beacon_list_ok',
      beacons: [
        { id: 1, addr: '10.0.0.1:9001' },
        { id: 2, addr: '[2001:db8::2]:9001' },
        { id: 3, addr: 'beacon3.example.net:9001' },
      ],
    };
    const { beacons, skipped } = parseBeaconList(reply, 2);
    assert.deepEqual(beacons, [
      { id: 1, host: '10.0.0.1', port: 9001 },
      { id: 3, host: 'beacon3.example.net', port: 9001 },
    ]);
    assert.deepEqual(skipped, []);
  });

  it('skips malformed entries instead of failing', () => {
    const reply = {
      beacons: [
        { id: 0, addr: '10.0.0.1:9001' },
        { id: -4, addr: '10.0.0.1:9001' },
        { id: 2 ** 32, addr: '10.0.0.1:9001' },
        { id: 1.5, addr: '10.0.0.1:9001' },
        { id: 5, addr: ':9001' },
        { id: 6, addr: '10.0.0.1:0' },
        { id: 7, addr: '10.0.0.1' },
        { id: 8, addr: 42 },
        { id: 9, addr: `${'a'.repeat(300)}:9001` },
        { id: 10, addr: 'bad host!:9001' },
        'not an object',
        null,
        [1, 2],
        { id: 11, addr: '10.0.0.11:9001' },
        { id: 11, addr: '10.0.0.12:9001' },
      ],
    };
    const { beacons, skipped } = parseBeaconList(reply, 99);
    assert.deepEqual(beacons, [{ id: 11, host: '10.0.0.11', port: 9001 }]);
    assert.equal(skipped.length, 13);
  });

  it('reads an empty or missing list as no beacons and rejects a non-array', () => {
    assert.deepEqual(parseBeaconList({ beacons: [] }, 1).beacons, []);
    assert.deepEqual(parseBeaconList({ beacons: null }, 1).beacons, []);
    assert.deepEqual(parseBeaconList({}, 1).beacons, []);
    assert.throws(() => parseBeaconList({ beacons: { id: 1 } }, 1), /no beacons array/);
  });

  it('ignores entries beyond the maximum', () => {
    const beacons = Array.from({ length: 300 }, (_, i) => ({ id: i + 1, addr: `10.0.${i >> 8}.${i & 255}:9001` }));
    const result = parseBeaconList({ beacons }, 1, 256);
    assert.equal(result.beacons.length, 256);
    assert.equal(result.beacons[0]?.id, 2); // its own id does not count
    assert.equal(result.skipped.length, 1);
    const junk = parseBeaconList({ beacons: Array.from({ length: 10_000 }, () => ({ id: 0 })) }, 1, 256);
    assert.equal(junk.skipped.length, 258); // 257 looked at, then one line for the rest
  });

  it('accepts IP literals and host names as addresses', () => {
    assert.deepEqual(parseBeaconAddr('203.0.113.7:9001'), { host: '203.0.113.7', port: 9001 });
    assert.deepEqual(parseBeaconAddr('[::1]:1'), { host: '::1', port: 1 });
    assert.deepEqual(parseBeaconAddr('beacon.example.com:9001'), { host: 'beacon.example.com', port: 9001 });
    assert.equal(parseBeaconAddr('[nope]:9001'), undefined);
    assert.equal(parseBeaconAddr('host:99999'), undefined);
    assert.equal(parseBeaconAddr(''), undefined);
  });
});

describe('discovered peer set', () => {
  it('refuses addresses gossip must never be sent to', () => {
    for (const ip of [
      '0.0.0.0',
      '0.1.2.3',
      '224.0.0.1',
      '239.1.2.3',
      '255.255.255.255',
      '::',
      '0:0:0:0:0:0:0:0',
      'ff02::1',
      'nonsense',
    ]) {
      assert.equal(usablePeerIp(ip, false), false, ip);
    }
    for (const ip of ['127.0.0.1', '10.1.2.3', '203.0.113.9', '::1', '2001:db8::7', '::ffff:10.0.0.1']) {
      assert.equal(usablePeerIp(ip, false), true, ip);
    }
    assert.equal(usablePeerIp('2001:db8::7', true), false);
    assert.equal(usablePeerIp('::ffff:10.0.0.1', true), true);
  });

  it('drops its own endpoint, duplicates and unusable addresses', () => {
    const self = ep('10.0.0.1');
    const peers = discoveredPeerSet(
      [
        ep('10.0.0.1'),
        ep('::ffff:10.0.0.2'),
        ep('10.0.0.2'),
        ep('224.0.0.1'),
        ep('10.0.0.3', 0),
        ep('2001:db8::1'),
        ep('10.0.0.4'),
      ],
      self,
      true,
    );
    assert.deepEqual(peers, [ep('10.0.0.2'), ep('10.0.0.4')]);
  });

  it('derives the advertised address from the bound IP, else from the route to the registry', () => {
    assert.equal(derivedAdvertiseAddr('10.0.0.5', 9001, '192.168.1.2'), '10.0.0.5:9001');
    assert.equal(derivedAdvertiseAddr('::', 9001, '192.168.1.2'), '192.168.1.2:9001');
    assert.equal(derivedAdvertiseAddr('0.0.0.0', 9001, '::ffff:192.168.1.2'), '192.168.1.2:9001');
    assert.equal(derivedAdvertiseAddr('', 9001, '2001:db8::5'), '[2001:db8::5]:9001');
    assert.equal(derivedAdvertiseAddr('::', 9001, undefined), undefined);
    assert.deepEqual(advertisedEndpoint('[2001:DB8::5]:9001'), ep('2001:db8::5'));
    assert.equal(advertisedEndpoint('beacon.example.com:9001'), undefined);
    assert.equal(advertisedEndpoint(undefined), undefined);
  });

  it('validates discovery settings', () => {
    assert.doesNotThrow(() =>
      checkDiscoverySettings({ registry: '127.0.0.1:9000', advertise: 'beacon.example.com:9001' }, 7),
    );
    assert.throws(() => checkDiscoverySettings({ registry: '127.0.0.1:9000' }, 0), /non-zero beacon id/);
    assert.throws(() => checkDiscoverySettings({ registry: 'nowhere' }, 7), /invalid registry address/);
    for (const advertise of [':9001', '0.0.0.0:9001', '[::]:9001', '10.0.0.1:0', 'a b:1', '224.0.0.1:9001']) {
      assert.throws(
        () => checkDiscoverySettings({ registry: '127.0.0.1:9000', advertise }, 7),
        /invalid -advertise/,
        advertise,
      );
    }
    assert.throws(() => checkDiscoverySettings({ registry: '127.0.0.1:9000', intervalMs: 0 }, 7), /intervalMs/);
  });
});

describe('PeerDirectory with discovered peers', () => {
  const a = ep('10.0.0.1');
  const b = ep('10.0.0.2');
  const c = ep('10.0.0.3');

  it('merges configured and discovered peers and reports the new ones', () => {
    const d = new PeerDirectory(1000);
    assert.deepEqual(d.setPeers([a], [b, a]), [a, b]);
    assert.equal(d.applySync(b, [5], 0), 'resumed');
    assert.deepEqual(d.setPeers([a], [b, c]), [c]);
    assert.deepEqual(d.owner(5, 10), b); // b stayed, so its list did too
    assert.deepEqual(d.setPeers([a], [c]), []);
    assert.equal(d.isPeer(b), false);
    assert.equal(d.owner(5, 10), undefined);
    assert.deepEqual(d.endpoints(), [a, c]);
  });

  it('shares the node list with a discovered peer only while it gossips back', () => {
    const d = new PeerDirectory(100);
    d.setPeers([a], [b]);
    assert.equal(d.sharesWith(a, 0), true);
    assert.equal(d.sharesWith(b, 0), false);
    assert.equal(d.sharesWith(c, 0), false);
    assert.equal(d.applySync(b, [], 10), 'resumed');
    assert.equal(d.applySync(b, [], 20), 'refreshed');
    assert.equal(d.sharesWith(b, 50), true);
    assert.equal(d.sharesWith(b, 120), false);
    d.setPeers([a, b], [b]); // configured as well: trusted regardless
    assert.equal(d.sharesWith(b, 500), true);
  });
});

describe('BeaconCore gossip with discovered peers', () => {
  const peer = ep('10.0.0.9');
  const node = ep('10.0.1.1', 4000);
  const syncIds = (o: Outgoing | undefined): readonly number[] | undefined => {
    const decoded = o ? decodeBeacon(o.bytes) : undefined;
    return decoded?.ok && decoded.value.type === 'Sync' ? decoded.value.nodeIds : undefined;
  };
  const core = (): BeaconCore =>
    new BeaconCore({
      beaconId: 1,
      maxNodes: 100,
      ttlMs: 60_000,
      maxNodesPerIp: 10,
      peerStaleMs: 30_000,
      limits: DEFAULT_LIMITS,
    });

  it('sends an unproven discovered peer an empty Sync and its list once it answers', () => {
    const c = core();
    c.handle(encodeBeacon({ type: 'Discover', nodeId: 42 }), node, 0);
    c.peers.setPeers([], [peer]);
    const first = c.gossip(0);
    assert.equal(first.length, 1);
    assert.deepEqual(first[0]?.to, peer);
    assert.deepEqual(syncIds(first[0]), []);
    const reply = c.handle(encodeBeacon({ type: 'Sync', beaconId: 2, nodeIds: [7] }), peer, 5);
    assert.deepEqual(syncIds(reply[0]), [42]); // answered at once
    assert.deepEqual(c.handle(encodeBeacon({ type: 'Sync', beaconId: 2, nodeIds: [7] }), peer, 6), []); // once
    assert.deepEqual(syncIds(c.gossip(10)[0]), [42]);
    assert.deepEqual(c.peers.owner(7, 10), peer);
    assert.deepEqual(syncIds(c.gossip(40_000)[0]), []); // it went quiet: back to empty
  });

  it('sends a configured peer its list from the start', () => {
    const c = core();
    c.handle(encodeBeacon({ type: 'Discover', nodeId: 42 }), node, 0);
    c.peers.setPeers([peer], [peer]);
    assert.deepEqual(syncIds(c.gossip(0)[0]), [42]);
  });

  it('still refuses Sync from a beacon that is not a peer', () => {
    const c = core();
    c.peers.setPeers([], [peer]);
    assert.deepEqual(c.handle(encodeBeacon({ type: 'Sync', beaconId: 2, nodeIds: [7] }), ep('10.0.0.8'), 0), []);
    assert.equal(c.drops.sync_not_peer, 1);
    assert.equal(c.peers.owner(7, 0), undefined);
  });
});
