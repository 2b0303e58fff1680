import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parseAddr, parseSocketAddr } from '../../src/protocol/address.js';
import { decodeBeacon, encodeBeacon } from '../../src/protocol/beacon.js';
import {
  DataFrameDecoder,
  decodeDataFrame,
  decodeFilePayload,
  encodeDataFrame,
  encodeFilePayload,
  DATA_MAX_PAYLOAD,
} from '../../src/protocol/dataexchange.js';
import {
  decodeEvent,
  encodeEvent,
  EventDecoder,
  EVENT_MAX_PAYLOAD,
  EVENT_MAX_TOPIC,
} from '../../src/protocol/eventstream.js';
import { decodeHandshakeMessage, encodeHandshakeMessage, HANDSHAKE_MAX_SIZE } from '../../src/protocol/handshake.js';
import {
  decodeIpcMessage,
  encodeIpcFrame,
  encodeIpcMessage,
  IPC_MAX_MESSAGE,
  IpcFrameSplitter,
} from '../../src/protocol/ipc.js';
import { parseJson } from '../../src/protocol/json.js';
import { decodeCaps, encodeCaps } from '../../src/protocol/caps.js';
import { decodePacket, encodePacket } from '../../src/protocol/packet.js';
import { decodePacketBatch, encodePacketBatch } from '../../src/protocol/packet-batch.js';
import {
  decodeRegistryFrame,
  encodeRegistryFrame,
  REGISTRY_MAX_MESSAGE,
  RegistryFrameSplitter,
} from '../../src/protocol/registry-frame.js';
import { DecodeError, type DecodeResult } from '../../src/protocol/result.js';
import { decodeSack, encodeSack } from '../../src/protocol/sack.js';
import {
  decodeSendResults,
  decodeStatusUpdate,
  decodeSubmitRequest,
  decodeSubmitResponse,
  decodeTaskFrame,
  encodeSendResults,
  encodeStatusUpdate,
  encodeSubmitRequest,
  encodeSubmitResponse,
} from '../../src/protocol/tasksubmit.js';
import {
  classifyDatagram,
  decodePila,
  decodePilk,
  decodePilm,
  decodePilp,
  decodePils,
  decodePilt,
  encodePila,
  encodePilk,
  encodePils,
  encodePilt,
} from '../../src/protocol/tunnel.js';
import { decodeTypedFrame, encodeTypedFrame } from '../../src/protocol/typed-frame.js';
import { Prng } from '../../src/transport/sim/prng.js';
import * as arb from './protocol-arbitraries.js';

/**
 * Every decoder is fed FUZZ_RUNS inputs (default 100 000): half random byte strings, half
 * mutations (bit flips, truncations, insertions, overwritten length fields) of valid encodings.
 * A decoder must return a typed result for each one; an exception fails the test with the seed.
 */
const RUNS = Number(process.env.FUZZ_RUNS ?? 100_000);
const SEED = Number(process.env.FUZZ_SEED ?? 0x5eed);

const sample = <T>(a: fc.Arbitrary<T>, n = 64): T[] => fc.sample(a, { numRuns: n, seed: SEED });

function mutate(rng: Prng, src: Uint8Array): Uint8Array {
  const buf = Buffer.from(src);
  switch (rng.int(6)) {
    case 0: {
      for (let i = 1 + rng.int(4); i > 0 && buf.length > 0; i--) {
        const at = rng.int(buf.length);
        buf[at] = (buf[at] as number) ^ (1 << rng.int(8));
      }
      return buf;
    }
    case 1:
      return buf.subarray(0, rng.int(buf.length + 1));
    case 2: {
      const extra = Buffer.alloc(1 + rng.int(16));
      rng.fill(extra);
      const at = rng.int(buf.length + 1);
      return Buffer.concat([buf.subarray(0, at), extra, buf.subarray(at)]);
    }
    case 3: {
      // Pump a length-looking field at a small offset to a huge or boundary value.
      if (buf.length < 4) return buf;
      const at = rng.int(Math.min(buf.length - 3, 12));
      const choices = [0xffffffff, 0x7fffffff, 0x01000001, 0x01000000, buf.length, 0];
      buf.writeUInt32BE(choices[rng.int(choices.length)] as number, at);
      return buf;
    }
    case 4: {
      if (buf.length < 2) return buf;
      const at = rng.int(Math.min(buf.length - 1, 12));
      buf.writeUInt16BE([0xffff, 0, 1, 0x8000][rng.int(4)] as number, at);
      return buf;
    }
    default: {
      const cut = rng.int(buf.length + 1);
      return Buffer.concat([buf.subarray(0, cut), buf.subarray(0, rng.int(buf.length + 1))]);
    }
  }
}

function randomBytes(rng: Prng): Uint8Array {
  const len = rng.chance(0.98) ? rng.int(96) : rng.int(2048);
  const buf = new Uint8Array(len);
  rng.fill(buf);
  return buf;
}

/** Runs `decode` over RUNS inputs; `check` validates whatever came back. */
function fuzz(
  name: string,
  seeds: Uint8Array[],
  decode: (b: Uint8Array) => unknown,
  check: (r: unknown) => void = checkResult,
): void {
  const rng = new Prng(SEED ^ (name.length * 7919));
  let accepted = 0;
  for (let i = 0; i < RUNS; i++) {
    const input =
      i % 2 === 0 || seeds.length === 0 ? randomBytes(rng) : mutate(rng, seeds[rng.int(seeds.length)] as Uint8Array);
    let result: unknown;
    try {
      result = decode(input);
    } catch (err) {
      assert.fail(
        `${name} threw on input ${Buffer.from(input).toString('hex').slice(0, 400)} (FUZZ_SEED=${SEED}): ${String(err)}`,
      );
    }
    check(result);
    if (isResult(result) && result.ok) accepted++;
  }
  // Mutations of valid encodings must also reach the success path now and then, or the fuzzing
  // only exercised the first length check.
  if (seeds.length > 0 && check === checkResult) assert.ok(accepted > 0, `${name}: no input was accepted`);
}

function isResult(r: unknown): r is DecodeResult<unknown> {
  return typeof r === 'object' && r !== null && 'ok' in r;
}

function checkResult(r: unknown): void {
  assert.ok(isResult(r), 'decoder must return a DecodeResult');
  if (!r.ok) assert.ok(r.error instanceof DecodeError, 'failure must carry a DecodeError');
}

/** Feeds the input to a stream decoder in random chunks; every item must be a typed result. */
function splitInto(
  rng: Prng,
  make: () => { push(c: Uint8Array): DecodeResult<unknown>[] },
): (b: Uint8Array) => DecodeResult<unknown> {
  return (bytes) => {
    const dec = make();
    let off = 0;
    let last: DecodeResult<unknown> = { ok: true, value: null };
    while (off < bytes.length) {
      const n = 1 + rng.int(bytes.length - off);
      for (const r of dec.push(bytes.subarray(off, off + n))) {
        checkResult(r);
        last = r;
      }
      off += n;
    }
    return last;
  };
}

describe(`protocol decoders survive ${RUNS} hostile inputs each`, () => {
  it('packet header', () => fuzz('packet', sample(arb.packet).map(encodePacket), decodePacket));

  it('packet batch (PILM plaintext)', () => {
    const packets = sample(arb.packet, 48);
    const seeds = [0, 8, 16, 32].map((i) => encodePacketBatch(packets.slice(i, i + 1 + (i % 5))));
    fuzz('packet-batch', seeds, decodePacketBatch);
  });

  it('capability advert', () =>
    fuzz(
      'caps',
      [
        encodeCaps({ request: true, maxSegment: 61_440, batch: true, synData: true }),
        encodeCaps({ request: false, maxSegment: 4096, batch: false, synData: false }),
      ],
      decodeCaps,
    ));

  it('SACK payload', () =>
    fuzz('sack', sample(arb.sackBlocks).map(encodeSack), decodeSack, (r) => {
      assert.ok(r === null || (Array.isArray(r) && r.length <= 4));
    }));

  it('tunnel frames', () => {
    const seeds = [
      ...sample(arb.packet, 16).map((p) => encodePilt(encodePacket(p))),
      ...sample(arb.pils, 16).map(encodePils),
      ...sample(arb.pilk, 16).map(encodePilk),
      ...sample(arb.pila, 16).map(encodePila),
    ];
    fuzz('classify', seeds, classifyDatagram, (r) => assert.equal(typeof r, 'string'));
    fuzz('pilt', seeds, decodePilt);
    fuzz('pils', seeds, decodePils);
    fuzz(
      'pilm',
      seeds.map((b) => (b.length > 3 && b[3] === 0x53 ? Buffer.concat([Buffer.from('PILM'), b.subarray(4)]) : b)),
      decodePilm,
    );
    fuzz('pilk', seeds, decodePilk);
    fuzz('pila', seeds, decodePila);
    fuzz('pilp', [Buffer.from('PILP')], decodePilp);
  });

  it('beacon messages', () => fuzz('beacon', sample(arb.beacon).map(encodeBeacon), decodeBeacon));

  it('IPC messages and frames', () => {
    const msgs = sample(arb.ipcMessage, 128);
    fuzz('ipc', msgs.map(encodeIpcMessage), decodeIpcMessage);
    const rng = new Prng(SEED);
    fuzz(
      'ipc-stream',
      msgs.map(encodeIpcFrame),
      splitInto(rng, () => new IpcFrameSplitter()),
    );
  });

  it('registry frames and JSON', () => {
    const frames = sample(arb.jsonObject).map(encodeRegistryFrame);
    fuzz('registry', frames, decodeRegistryFrame);
    fuzz(
      'registry-stream',
      frames,
      splitInto(new Prng(SEED), () => new RegistryFrameSplitter()),
    );
    fuzz(
      'json',
      sample(arb.jsonValue).map((v) => Buffer.from(JSON.stringify(v))),
      parseJson,
    );
  });

  it('trust handshake message', () =>
    fuzz('handshake', sample(arb.handshakeMessage).map(encodeHandshakeMessage), decodeHandshakeMessage));

  it('service frames', () => {
    const dataSeeds = sample(arb.bytes(64)).map((b, i) =>
      encodeDataFrame({
        type: 1 + (i % 4),
        payload: i % 4 === 3 ? encodeFilePayload({ name: `f${i}.txt`, data: b }) : b,
      }),
    );
    fuzz('data', dataSeeds, decodeDataFrame);
    fuzz(
      'data-stream',
      dataSeeds,
      splitInto(new Prng(SEED), () => new DataFrameDecoder()),
    );
    fuzz(
      'file-payload',
      dataSeeds.map((f) => f.subarray(8)),
      decodeFilePayload,
      (r) => {
        assert.ok(typeof r === 'object' && r !== null && 'name' in r && 'data' in r);
      },
    );
    const eventSeeds = sample(fc.record({ topic: arb.text(20), payload: arb.bytes(40) })).map(encodeEvent);
    fuzz('event', eventSeeds, decodeEvent);
    fuzz(
      'event-stream',
      eventSeeds,
      splitInto(new Prng(SEED), () => new EventDecoder()),
    );
    const typed = sample(fc.record({ type: arb.u32, payload: arb.bytes(40) })).map(encodeTypedFrame);
    fuzz('typed', typed, decodeTypedFrame);
    fuzz('task-frame', typed, decodeTaskFrame);
    fuzz(
      'submit-request',
      sample(arb.submitRequest).map((m) => encodeSubmitRequest(m).subarray(8)),
      decodeSubmitRequest,
    );
    fuzz(
      'submit-response',
      sample(arb.submitResponse).map((m) => encodeSubmitResponse(m).subarray(8)),
      decodeSubmitResponse,
    );
    fuzz(
      'status-update',
      sample(arb.statusUpdate).map((m) => encodeStatusUpdate(m).subarray(8)),
      decodeStatusUpdate,
    );
    fuzz(
      'send-results',
      sample(arb.sendResults).map((m) => encodeSendResults(m).subarray(8)),
      decodeSendResults,
    );
  });

  it('address text', () => {
    const rng = new Prng(SEED);
    const alphabet = '0123456789abcdefABCDEF:.x- ';
    for (let i = 0; i < RUNS; i++) {
      let s = '';
      for (let n = rng.int(24); n > 0; n--) s += alphabet[rng.int(alphabet.length)];
      checkResult(parseAddr(s));
      checkResult(parseSocketAddr(s));
    }
  });
});

describe('declared lengths beyond the protocol maximum are refused before buffering', () => {
  const header = (len: number): Buffer => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(len);
    return b;
  };
  const expectTooLong = (r: DecodeResult<unknown>): void => {
    assert.equal(r.ok, false);
    if (!r.ok) assert.equal(r.error.code, 'too_long');
  };

  it('IPC and registry frames', () => {
    expectTooLong(new IpcFrameSplitter().push(header(IPC_MAX_MESSAGE + 1))[0] ?? { ok: true, value: null });
    expectTooLong(new RegistryFrameSplitter().push(header(REGISTRY_MAX_MESSAGE + 1))[0] ?? { ok: true, value: null });
  });

  it('data exchange, typed and event frames', () => {
    const data = Buffer.concat([header(1), header(DATA_MAX_PAYLOAD + 1)]);
    expectTooLong(decodeDataFrame(data));
    expectTooLong(new DataFrameDecoder().push(data)[0] ?? { ok: true, value: null });
    expectTooLong(decodeTypedFrame(data));
    const topic = Buffer.alloc(2);
    topic.writeUInt16BE(EVENT_MAX_TOPIC + 1);
    expectTooLong(decodeEvent(topic));
    const ev = Buffer.concat([Buffer.from([0, 1, 0x61]), header(EVENT_MAX_PAYLOAD + 1)]);
    expectTooLong(decodeEvent(ev));
    expectTooLong(new EventDecoder().push(ev)[0] ?? { ok: true, value: null });
  });

  it('trust handshake messages', () => {
    expectTooLong(decodeHandshakeMessage(Buffer.alloc(HANDSHAKE_MAX_SIZE + 1, 0x20)));
  });
});
