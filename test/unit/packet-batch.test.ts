import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { makeAddr } from '../../src/protocol/address.js';
import { decodePacket, encodePacket, makePacket, Proto, type Packet } from '../../src/protocol/packet.js';
import {
  batchedSize,
  decodePacketBatch,
  encodeBatchedHeader,
  encodePacketBatch,
  isBatchable,
  MAX_BATCHED_PAYLOAD,
} from '../../src/protocol/packet-batch.js';
import { groupForBatches, SendBatcher } from '../../src/tunnel/batcher.js';

function packet(seq: number, size: number): Packet {
  return makePacket({
    flags: 0x2,
    protocol: Proto.Stream,
    src: makeAddr(1, 10),
    dst: makeAddr(1, 20),
    srcPort: 49152,
    dstPort: 1002,
    seq,
    ack: 7,
    window: 64,
    payload: Buffer.alloc(size, seq & 0xff),
  });
}

describe('packet batch (PILM plaintext)', () => {
  it('round-trips packets in order, each decodable as a packet', () => {
    const packets = [packet(1, 0), packet(2, 100), packet(3, 4096)];
    const body = encodePacketBatch(packets);
    assert.equal(
      body.length,
      packets.reduce((n, p) => n + batchedSize(p), 0),
    );
    assert.equal(body.readUInt16BE(0), 34, 'length prefix of an empty-payload packet');
    const split = decodePacketBatch(body);
    assert.ok(split.ok);
    assert.equal(split.value.length, 3);
    split.value.forEach((bytes, i) => {
      const d = decodePacket(bytes, { verifyChecksum: false });
      assert.ok(d.ok);
      const want = packets[i] as Packet;
      assert.equal(d.value.seq, want.seq);
      assert.deepEqual(Buffer.from(d.value.payload), Buffer.from(want.payload));
      // The header is the reference's, except the CRC field (zero: the AEAD authenticates).
      const reference = Buffer.from(encodePacket(want));
      assert.deepEqual(Buffer.from(bytes.subarray(0, 30)), reference.subarray(0, 30));
      assert.equal(Buffer.from(bytes).readUInt32BE(30), 0);
    });
  });

  it('refuses empty bodies, short packets, cut lengths and trailing bytes', () => {
    assert.equal(decodePacketBatch(new Uint8Array(0)).ok, false);
    const body = encodePacketBatch([packet(1, 10), packet(2, 10)]);
    assert.equal(decodePacketBatch(body.subarray(0, body.length - 1)).ok, false, 'last packet cut');
    assert.equal(decodePacketBatch(Buffer.concat([body, Buffer.from([0])])).ok, false, 'one trailing byte');
    const short = Buffer.from(body);
    short.writeUInt16BE(33, 0);
    assert.equal(decodePacketBatch(short).ok, false, 'a packet shorter than its header');
    assert.throws(() => encodePacketBatch([]), RangeError);
  });

  it('carries payloads up to 65,501 bytes (the u16 length covers the header) and refuses larger ones by name', () => {
    assert.equal(MAX_BATCHED_PAYLOAD, 65_501);
    const largest = packet(1, MAX_BATCHED_PAYLOAD);
    assert.equal(isBatchable(largest), true);
    assert.equal(encodeBatchedHeader(largest).readUInt16BE(0), 0xffff);
    const split = decodePacketBatch(encodePacketBatch([largest]));
    assert.ok(split.ok);
    assert.equal(split.value[0]?.length, 0xffff);
    for (const size of [65_502, 65_535]) {
      const p = packet(2, size);
      assert.equal(isBatchable(p), false);
      assert.throws(() => encodeBatchedHeader(p), /exceeds the batch maximum of 65501/);
      assert.throws(() => encodePacketBatch([packet(3, 1), p]), /exceeds the batch maximum/);
    }
  });
});

describe('groupForBatches', () => {
  it('keeps order and fills each group up to the limit', () => {
    const packets = Array.from({ length: 10 }, (_, i) => packet(i, 64)); // 100 bytes each
    const groups = groupForBatches(packets, 350);
    assert.deepEqual(
      groups.map((g) => g.length),
      [3, 3, 3, 1],
    );
    assert.deepEqual(
      groups.flat().map((p) => p.seq),
      packets.map((p) => p.seq),
    );
  });

  it('gives a packet larger than the limit a group of its own', () => {
    const groups = groupForBatches([packet(1, 10), packet(2, 5000), packet(3, 10)], 1364);
    assert.deepEqual(
      groups.map((g) => g.map((p) => p.seq)),
      [[1], [2], [3]],
    );
  });

  it('gives a packet too large for any batch a group of its own, whatever the limit', () => {
    const groups = groupForBatches(
      [packet(1, 10), packet(2, 65_502), packet(3, 65_535), packet(4, 10), packet(5, 10)],
      1_000_000,
    );
    assert.deepEqual(
      groups.map((g) => g.map((p) => p.seq)),
      [[1], [2], [3], [4, 5]],
    );
  });
});

describe('SendBatcher', () => {
  it('never throws from its flush: a failing node is reported, the other nodes are still flushed', async () => {
    const flushed: number[] = [];
    const errors: { node: number; packets: number; err: string }[] = [];
    const batcher = new SendBatcher(
      (node, packets) => {
        if (node === 2) encodePacketBatch(packets);
        flushed.push(node);
      },
      (node, packets, err) => errors.push({ node, packets, err: String(err) }),
    );
    batcher.add(1, packet(1, 10));
    batcher.add(2, packet(2, 65_502));
    batcher.add(3, packet(3, 10));
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(flushed, [1, 3]);
    assert.equal(errors.length, 1);
    assert.equal(errors[0]?.node, 2);
    assert.equal(errors[0]?.packets, 1);
    assert.match(errors[0]?.err ?? '', /RangeError/);
  });
});
