import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  formatAddr,
  formatSocketAddr,
  parseAddr,
  parseSocketAddr,
  readAddr,
  writeAddr,
} from '../../src/protocol/address.js';
import { decodeBeacon, encodeBeacon } from '../../src/protocol/beacon.js';
import {
  DataFrameDecoder,
  decodeDataFrame,
  decodeFilePayload,
  encodeDataFrame,
  encodeFilePayload,
} from '../../src/protocol/dataexchange.js';
import { decodeEvent, encodeEvent, EventDecoder, type StreamEvent } from '../../src/protocol/eventstream.js';
import { decodeHandshakeMessage, encodeHandshakeMessage } from '../../src/protocol/handshake.js';
import { formatIpBytes, parseIpBytes } from '../../src/protocol/ip.js';
import { decodeIpcMessage, encodeIpcFrame, encodeIpcMessage, IpcFrameSplitter } from '../../src/protocol/ipc.js';
import { decodePacket, encodePacket } from '../../src/protocol/packet.js';
import { decodeRegistryFrame, encodeRegistryFrame, RegistryFrameSplitter } from '../../src/protocol/registry-frame.js';
import type { DecodeResult } from '../../src/protocol/result.js';
import { decodeSack, encodeSack } from '../../src/protocol/sack.js';
import {
  decodeSendResults,
  decodeStatusUpdate,
  decodeSubmitRequest,
  decodeSubmitResponse,
  decodeTaskFrame,
  decodeTaskRequest,
  encodeSendResults,
  encodeStatusUpdate,
  encodeSubmitRequest,
  encodeSubmitResponse,
  isValidTaskId,
  TaskFrameDecoder,
  TaskFrameType,
} from '../../src/protocol/tasksubmit.js';
import {
  classifyDatagram,
  decodePila,
  decodePilk,
  decodePilp,
  decodePils,
  decodePilt,
  encodePila,
  encodePilk,
  encodePilp,
  encodePils,
  encodePilt,
} from '../../src/protocol/tunnel.js';
import type { TypedFrame } from '../../src/protocol/typed-frame.js';
import * as A from './protocol-arbitraries.js';

const RUNS = { numRuns: 300 };

function value<T>(r: DecodeResult<T>): T {
  if (!r.ok) assert.fail(`expected ok, got ${r.error.code}: ${r.error.message}`);
  return r.value;
}

function eq(actual: unknown, expected: unknown): void {
  assert.deepStrictEqual(A.norm(actual), A.norm(expected));
}

/** Pushes chunks into a splitter and collects every frame, asserting no failure. */
function collect<T>(push: (c: Uint8Array) => DecodeResult<T>[], chunks: Uint8Array[]): T[] {
  return chunks.flatMap((c) => push(c).map(value));
}

const cuts = fc.array(fc.nat({ max: 100000 }), { maxLength: 8 });

describe('protocol round trips', () => {
  it('address text and binary forms', () => {
    fc.assert(
      fc.property(A.addr, A.u16, (a, port) => {
        eq(value(parseAddr(formatAddr(a))), a);
        eq(value(parseSocketAddr(formatSocketAddr({ addr: a, port }))), { addr: a, port });
        const buf = new Uint8Array(8);
        writeAddr(buf, 1, a);
        eq(readAddr(buf, 1), a);
      }),
      RUNS,
    );
  });

  it('packet', () => {
    fc.assert(
      fc.property(A.packet, (p) => {
        eq(value(decodePacket(encodePacket(p))), p);
      }),
      RUNS,
    );
  });

  it('SACK blocks', () => {
    fc.assert(
      fc.property(A.sackBlocks, (blocks) => {
        eq(decodeSack(encodeSack(blocks)), blocks);
      }),
      RUNS,
    );
  });

  it('tunnel frames', () => {
    fc.assert(
      fc.property(A.packet, A.pils, A.pilk, A.pila, (p, s, k, a) => {
        const pkt = encodePacket(p);
        const t = encodePilt(pkt);
        assert.equal(classifyDatagram(t), 'PILT');
        eq(value(decodePilt(t)).packet, pkt);
        const sf = encodePils(s);
        assert.equal(classifyDatagram(sf), 'PILS');
        eq(value(decodePils(sf)), s);
        const kf = encodePilk(k);
        assert.equal(classifyDatagram(kf), 'PILK');
        eq(value(decodePilk(kf)), k);
        const af = encodePila(a);
        assert.equal(af.length, 136);
        assert.equal(classifyDatagram(af), 'PILA');
        eq(value(decodePila(af)), a);
        assert.equal(classifyDatagram(encodePilp()), 'PILP');
        assert.equal(value(decodePilp(encodePilp())), true);
      }),
      RUNS,
    );
  });

  it('beacon messages', () => {
    fc.assert(
      fc.property(A.beacon, (m) => {
        const wire = encodeBeacon(m);
        assert.equal(classifyDatagram(wire), 'beacon');
        eq(value(decodeBeacon(wire)), m);
      }),
      RUNS,
    );
  });

  it('IP bytes and text (RFC 5952, checked against the WHATWG URL serializer)', () => {
    fc.assert(
      fc.property(fc.oneof(A.fixedBytes(4), A.fixedBytes(16)), (b) => {
        const t = formatIpBytes(b);
        const back = parseIpBytes(t);
        if (b.length === 16 && back.length === 4) eq(back, b.subarray(12));
        else eq(back, b);
        if (b.length === 16 && back.length === 16) assert.equal(t, new URL(`http://[${t}]/`).hostname.slice(1, -1));
      }),
      { numRuns: 1000 },
    );
    fc.assert(
      fc.property(fc.ipV6(), (t) => {
        const b = parseIpBytes(t);
        const canonical = new URL(`http://[${t}]/`).hostname.slice(1, -1);
        if (b.length === 16) assert.equal(formatIpBytes(b), canonical);
        else assert.match(canonical, /^::ffff:/);
      }),
      { numRuns: 1000 },
    );
  });

  it('IPC messages and frame splitter', () => {
    fc.assert(
      fc.property(A.ipcMessage, (m) => {
        eq(value(decodeIpcMessage(encodeIpcMessage(m))), m);
      }),
      { numRuns: 1000 },
    );
    fc.assert(
      fc.property(fc.array(A.ipcMessage, { maxLength: 6 }), cuts, (msgs, cs) => {
        const frames = msgs.map(encodeIpcFrame);
        // Empty frames are legal on the wire and skipped.
        const wire = Buffer.concat(frames.flatMap((f) => [Buffer.alloc(4), f]));
        const splitter = new IpcFrameSplitter();
        const got = collect((c) => splitter.push(c), A.chunked(wire, cs));
        eq(
          got.map((b) => value(decodeIpcMessage(b))),
          msgs,
        );
        assert.equal(splitter.buffered, 0);
      }),
      RUNS,
    );
  });

  it('registry frames and splitter', () => {
    fc.assert(
      fc.property(fc.array(A.jsonObject, { minLength: 1, maxLength: 5 }), cuts, (objs, cs) => {
        const frames = objs.map(encodeRegistryFrame);
        const first = value(decodeRegistryFrame(Buffer.concat(frames)));
        eq(first.value, objs[0]);
        assert.equal(first.length, (frames[0] as Uint8Array).length);
        const splitter = new RegistryFrameSplitter();
        eq(
          collect((c) => splitter.push(c), A.chunked(Buffer.concat(frames), cs)),
          objs,
        );
      }),
      RUNS,
    );
  });

  it('trust handshake message', () => {
    fc.assert(
      fc.property(A.handshakeMessage, (m) => {
        eq(value(decodeHandshakeMessage(encodeHandshakeMessage(m))), m);
      }),
      RUNS,
    );
  });

  const typedFrame: fc.Arbitrary<TypedFrame> = fc.record({ type: A.u32, payload: A.bytes(300) });

  it('data exchange frames, FILE payload and decoder', () => {
    fc.assert(
      fc.property(fc.array(typedFrame, { minLength: 1, maxLength: 5 }), cuts, (frames, cs) => {
        const wire = Buffer.concat(frames.map(encodeDataFrame));
        const first = value(decodeDataFrame(wire));
        eq(first.value, frames[0]);
        const decoder = new DataFrameDecoder();
        eq(
          collect((c) => decoder.push(c), A.chunked(wire, cs)),
          frames,
        );
      }),
      RUNS,
    );
    fc.assert(
      fc.property(A.text(40), A.bytes(100), (name, data) => {
        eq(decodeFilePayload(encodeFilePayload({ name, data })), { name, data });
      }),
      RUNS,
    );
  });

  it('event stream events and decoder', () => {
    const event: fc.Arbitrary<StreamEvent> = fc.record({ topic: A.text(60), payload: A.bytes(200) });
    fc.assert(
      fc.property(fc.array(event, { minLength: 1, maxLength: 5 }), cuts, (events, cs) => {
        const wire = Buffer.concat(events.map(encodeEvent));
        eq(value(decodeEvent(wire)).value, events[0]);
        const decoder = new EventDecoder();
        eq(
          collect((c) => decoder.push(c), A.chunked(wire, cs)),
          events,
        );
      }),
      RUNS,
    );
  });

  it('task submit messages and decoder', () => {
    fc.assert(
      fc.property(A.submitRequest, A.submitResponse, A.statusUpdate, A.sendResults, cuts, (req, res, st, sr, cs) => {
        const wire = [
          encodeSubmitRequest(req),
          encodeSubmitResponse(res),
          encodeStatusUpdate(st),
          encodeSendResults(sr),
        ];
        const frames = wire.map((w) => value(decodeTaskFrame(w)).value);
        assert.deepEqual(
          frames.map((f) => f.type),
          [TaskFrameType.Submit, TaskFrameType.Submit, TaskFrameType.StatusUpdate, TaskFrameType.SendResults],
        );
        const [f0, f1, f2, f3] = frames as [TypedFrame, TypedFrame, TypedFrame, TypedFrame];
        eq(value(decodeSubmitRequest(f0.payload)), req);
        eq(value(decodeSubmitResponse(f1.payload)), res);
        eq(value(decodeStatusUpdate(f2.payload)), st);
        eq(value(decodeSendResults(f3.payload)), sr);
        eq(value(decodeTaskRequest(f0)), { kind: 'Submit', message: req });
        eq(value(decodeTaskRequest(f3)), { kind: 'SendResults', message: sr });
        assert.ok(isValidTaskId(req.taskId));
        const decoder = new TaskFrameDecoder();
        eq(
          collect((c) => decoder.push(c), A.chunked(Buffer.concat(wire), cs)),
          frames,
        );
      }),
      RUNS,
    );
  });
});
