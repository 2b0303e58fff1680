import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Flag, makePacket, Proto, type Packet } from '../../src/protocol/packet.js';
import { decodePacketBatch, encodePacketBatch } from '../../src/protocol/packet-batch.js';
import { batchParts } from '../../src/tunnel/sender.js';

function packet(size: number, seq: number): Packet {
  const payload = Buffer.alloc(size);
  for (let i = 0; i < size; i++) payload[i] = (i * 7 + seq) & 0xff;
  return makePacket({
    flags: Flag.ACK,
    protocol: Proto.Stream,
    src: { network: 0, node: 1 },
    dst: { network: 0, node: 2 },
    srcPort: 1000,
    dstPort: 7,
    seq,
    ack: 0,
    window: 512,
    payload,
  });
}

describe('PILM plaintext from pieces', () => {
  for (const sizes of [[0, 10, 20], [30_000, 0, 25_000], [5, 4096, 3, 2, 9000, 1], [2048], [2047, 2048, 2047]]) {
    it(`is byte for byte the joined batch body (payloads ${sizes.join(', ')})`, () => {
      const group = sizes.map((n, i) => packet(n, i));
      const parts = batchParts(group);
      assert.deepEqual(Buffer.concat(parts), encodePacketBatch(group));
      const split = decodePacketBatch(Buffer.concat(parts));
      assert.ok(split.ok);
      assert.equal(split.value.length, group.length);
    });
  }

  it('keeps large payloads as they are and joins runs of small packets', () => {
    const group = [packet(10, 0), packet(20, 1), packet(40_000, 2), packet(5, 3)];
    const parts = batchParts(group);
    assert.equal(parts.length, 4);
    assert.equal(parts[2], group[2]?.payload);
  });
});
