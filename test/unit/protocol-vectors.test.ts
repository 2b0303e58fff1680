import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatAddr, formatSocketAddr, parseAddr, parseSocketAddr } from '../../src/protocol/address.js';
import { decodeBeacon, encodeBeacon } from '../../src/protocol/beacon.js';
import { DataType, decodeDataFrame, decodeFilePayload, encodeFileFrame } from '../../src/protocol/dataexchange.js';
import { decodeEvent, encodeEvent, EVENT_TOPIC_ALL } from '../../src/protocol/eventstream.js';
import { decodeIpcMessage, encodeIpcFrame, IpcFrameSplitter } from '../../src/protocol/ipc.js';
import { decodePacket, encodePacket, Flag, makePacket, Proto } from '../../src/protocol/packet.js';
import { challenge, decodeRegistryFrame, encodeRegistryFrame } from '../../src/protocol/registry-frame.js';
import type { DecodeResult } from '../../src/protocol/result.js';
import { decodeSack, encodeSack } from '../../src/protocol/sack.js';
import {
  classifyDatagram,
  decodePila,
  decodePilk,
  decodePils,
  decodePilt,
  encodePila,
  encodePilk,
  encodePils,
  encodePilt,
  pilaSignedMessage,
} from '../../src/protocol/tunnel.js';
import { norm } from './protocol-arbitraries.js';

/** Vectors from PROTOCOL.md (§1.1, §2.7, §2.8, §3.2, §3.3, §4, §5.3, §8.2, §9.3, §9.4, Appendix A). */

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

function value<T>(r: DecodeResult<T>): T {
  if (!r.ok) assert.fail(`expected ok, got ${r.error.code}: ${r.error.message}`);
  return r.value;
}

function eq(actual: unknown, expected: unknown): void {
  assert.deepStrictEqual(norm(actual), norm(expected));
}

const A_PUB = hex('7b4e909bbe7ffe44c465a220037d608ee35897d31ef972f07f74892cb0f73f13');
const ED_PUB = hex('17cb79fb2b4120f2b1ec65e4198d6e08b28e813feb01e4a400839b85e18080ce');
const PILA_SIG = hex(
  'e37a2b6847555b05ff2e699f09b9e072ab510dad4397476603b7c7a54db124d3986162ed74844e8f36913c4366e04749953209a2dbe518c0ace66cca2fbc1405',
);

const SYN_HEX = '11010000000000000001000000000002c00003e800000000000000000200145ed874';
const DATA_HEX = '12010005000000000001000000000002c00003e8000000010000000101f65ee872c868656c6c6f';

const synPacket = makePacket({
  flags: Flag.SYN,
  protocol: Proto.Stream,
  src: { network: 0, node: 1 },
  dst: { network: 0, node: 2 },
  srcPort: 49152,
  dstPort: 1000,
  seq: 0,
  ack: 0,
  window: 512,
});

describe('protocol vectors', () => {
  it('§1.1 address text forms', () => {
    assert.equal(formatAddr({ network: 0, node: 11 }), '0:0000.0000.000B');
    assert.equal(formatAddr({ network: 1, node: 0xf2910004 }), '1:0001.F291.0004');
    eq(value(parseAddr('0:0000.0000.000B')), { network: 0, node: 11 });
    eq(value(parseAddr('1:0001.f291.0004')), { network: 1, node: 0xf2910004 });
    const mismatch = parseAddr('1:00A3.F291.0004');
    assert.equal(mismatch.ok, false);
    eq(value(parseSocketAddr('0:0000.0000.0002:1000')), { addr: { network: 0, node: 2 }, port: 1000 });
    assert.equal(formatSocketAddr({ addr: { network: 0, node: 2 }, port: 1000 }), '0:0000.0000.0002:1000');
  });

  it('§2.8 SYN packet', () => {
    assert.equal(toHex(encodePacket(synPacket)), SYN_HEX);
    eq(value(decodePacket(hex(SYN_HEX))), synPacket);
  });

  it('§2.8 data packet "hello"', () => {
    const p = makePacket({
      flags: Flag.ACK,
      protocol: Proto.Stream,
      src: { network: 0, node: 1 },
      dst: { network: 0, node: 2 },
      srcPort: 49152,
      dstPort: 1000,
      seq: 1,
      ack: 1,
      window: 502,
      payload: Buffer.from('hello'),
    });
    assert.equal(toHex(encodePacket(p)), DATA_HEX);
    eq(value(decodePacket(hex(DATA_HEX))), p);
  });

  it('§2.7 SACK payload, one block [8193,12289)', () => {
    assert.equal(toHex(encodeSack([{ left: 8193, right: 12289 }])), '5341434b010000200100003001');
    eq(decodeSack(hex('5341434b010000200100003001')), [{ left: 8193, right: 12289 }]);
  });

  it('§3.2 PILT carrying the SYN', () => {
    const frame = encodePilt(hex(SYN_HEX));
    assert.equal(toHex(frame), `50494c54${SYN_HEX}`);
    assert.equal(frame.length, 38);
    eq(value(decodePilt(frame)).packet, hex(SYN_HEX));
  });

  it('PILK (node 1, X25519 priv 11×32)', () => {
    const wire = '50494c4b000000017b4e909bbe7ffe44c465a220037d608ee35897d31ef972f07f74892cb0f73f13';
    assert.equal(toHex(encodePilk({ senderNode: 1, x25519Public: A_PUB })), wire);
    assert.equal(classifyDatagram(hex(wire)), 'PILK');
    eq(value(decodePilk(hex(wire))), { senderNode: 1, x25519Public: A_PUB });
  });

  it('PILA byte layout and signed message', () => {
    const wire = `50494c41 00000001 ${toHex(A_PUB)} ${toHex(ED_PUB)} ${toHex(PILA_SIG)}`;
    const frame = { senderNode: 1, x25519Public: A_PUB, ed25519Public: ED_PUB, signature: PILA_SIG };
    const encoded = encodePila(frame);
    assert.equal(encoded.length, 136);
    assert.equal(toHex(encoded), toHex(hex(wire)));
    eq(value(decodePila(hex(wire))), frame);
    assert.equal(
      toHex(pilaSignedMessage(1, A_PUB)),
      toHex(hex('61757468 00000001 7b4e909bbe7ffe44c465a220037d608ee35897d31ef972f07f74892cb0f73f13')),
    );
  });

  it('PILS layout of the encrypted SYN (prefix a1a2a3a4, counter 1)', () => {
    const wire =
      '50494c5300000001a1a2a3a400000000000000012f5ddd9069e1279529f7f6b8e2962f4d947e4ca87cdce6ad54dad981f62aa366e53d1caf3cfdc3d97ac580a61c06f0f076f5';
    const frame = {
      senderNode: 1,
      nonce: hex('a1a2a3a4 0000000000000001'),
      sealed: hex(
        '2f5ddd9069e1279529f7f6b8e2962f4d947e4ca87cdce6ad54dad981f62aa366e53d 1caf3cfdc3d97ac580a61c06f0f076f5',
      ),
    };
    const encoded = encodePils(frame);
    assert.equal(encoded.length, 70);
    assert.equal(toHex(encoded), wire);
    eq(value(decodePils(hex(wire))), frame);
  });

  it('§4 beacon Discover node 5 and DiscoverReply 203.0.113.7:4000', () => {
    assert.equal(toHex(encodeBeacon({ type: 'Discover', nodeId: 5 })), '0100000005');
    eq(value(decodeBeacon(hex('0100000005'))), { type: 'Discover', nodeId: 5 });
    assert.equal(toHex(encodeBeacon({ type: 'DiscoverReply', ip: '203.0.113.7', port: 4000 })), '0204cb0071070fa0');
    eq(value(decodeBeacon(hex('0204cb0071070fa0'))), { type: 'DiscoverReply', ip: '203.0.113.7', port: 4000 });
  });

  it('§8.2 IPC Dial 0:0000.0000.0002 port 7', () => {
    const msg = { cmd: 'Dial', addr: { network: 0, node: 2 }, port: 7 } as const;
    assert.equal(toHex(encodeIpcFrame(msg)), '00000009030000000000020007');
    const frames = new IpcFrameSplitter().push(hex('00000009030000000000020007'));
    assert.equal(frames.length, 1);
    eq(value(decodeIpcMessage(value(frames[0] as DecodeResult<Uint8Array>))), msg);
  });

  it('IPC DialData (pilot-ts extension 0x40): a Dial followed by its first bytes', () => {
    const msg = { cmd: 'DialData', addr: { network: 0, node: 2 }, port: 7, data: Buffer.from('ping') } as const;
    const wire = '0000000d40000000000002000770696e67';
    assert.equal(toHex(encodeIpcFrame(msg)), wire);
    const decoded = value(decodeIpcMessage(hex(wire).subarray(4)));
    assert.equal(decoded.cmd, 'DialData');
    if (decoded.cmd === 'DialData')
      eq({ ...decoded, data: Buffer.from(decoded.data).toString() }, { ...msg, data: 'ping' });
  });

  it('IPC DialCancel (pilot-ts extension 0x41): the third dial of the client', () => {
    const msg = { cmd: 'DialCancel', dialSeq: 3 } as const;
    const wire = '000000054100000003';
    assert.equal(toHex(encodeIpcFrame(msg)), wire);
    eq(value(decodeIpcMessage(hex(wire).subarray(4))), msg);
  });

  it('IPC Error with a code other than 1 (pilot-ts: the kind of failure, here 6 untrusted)', () => {
    const msg = { cmd: 'Error', code: 6, message: 'no' } as const;
    const wire = '000000050a00066e6f';
    assert.equal(toHex(encodeIpcFrame(msg)), wire);
    eq(value(decodeIpcMessage(hex(wire).subarray(4))), msg);
  });

  it('§9.3 data exchange FILE a.txt = "hi"', () => {
    const wire = '00000004000000090005612e7478746869';
    assert.equal(toHex(encodeFileFrame({ name: 'a.txt', data: Buffer.from('hi') })), wire);
    const frame = value(decodeDataFrame(hex(wire)));
    assert.equal(frame.length, 17);
    assert.equal(frame.value.type, DataType.File);
    eq(decodeFilePayload(frame.value.payload), { name: 'a.txt', data: Buffer.from('hi') });
  });

  it('§9.4 events: subscribe-all and status/online', () => {
    assert.equal(toHex(encodeEvent({ topic: EVENT_TOPIC_ALL, payload: new Uint8Array(0) })), '00012a00000000');
    eq(value(decodeEvent(hex('00012a00000000'))), { value: { topic: '*', payload: new Uint8Array(0) }, length: 7 });
    const wire = '0006737461747573000000066f6e6c696e65';
    assert.equal(toHex(encodeEvent({ topic: 'status', payload: Buffer.from('online') })), wire);
    eq(value(decodeEvent(hex(wire))).value, { topic: 'status', payload: Buffer.from('online') });
  });

  it('§5.3 registry heartbeat frame (node 1) and challenge strings', () => {
    const sig = 'YQbt9kNI8YozUKK8Kt2Pvi5dFe+sbma6gRmS3FOQpJxoqesdsA5LQ7oTQV3kJMLaMSbFppC2akKSRFc7qo7mCA==';
    const json = `{"node_id":1,"signature":"${sig}","type":"heartbeat"}`;
    const frame = encodeRegistryFrame({ node_id: 1, signature: sig, type: 'heartbeat' });
    assert.equal(toHex(frame.subarray(0, 4)), '00000087');
    assert.equal(Buffer.from(frame.subarray(4)).toString('utf8'), json);
    const decoded = value(decodeRegistryFrame(Buffer.concat([hex('00000087'), Buffer.from(json)])));
    eq(decoded, { value: { node_id: 1, signature: sig, type: 'heartbeat' }, length: 139 });
    assert.equal(challenge.heartbeat(1), 'heartbeat:1');
  });
});
