import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  decodeNatProbe,
  decodeNatProbeReply,
  encodeNatProbe,
  encodeNatProbeReply,
  NAT_PROBE,
  NAT_PROBE_REPLY,
  natType,
} from '../../src/protocol/nat-probe.js';
import { decodeBeacon } from '../../src/protocol/beacon.js';
import * as arb from './protocol-arbitraries.js';

const RUNS = Math.min(Number(process.env.FUZZ_RUNS ?? 20_000), 20_000);

describe('NAT probe codec', () => {
  it('NatProbe round trip: type 0x0c, token u32 big-endian', () => {
    fc.assert(
      fc.property(arb.u32, (token) => {
        const bytes = encodeNatProbe(token);
        assert.equal(bytes.length, 5);
        assert.equal(bytes[0], NAT_PROBE);
        assert.deepEqual(decodeNatProbe(bytes), { ok: true, value: token });
      }),
    );
    assert.deepEqual([...encodeNatProbe(0x01020304)], [0x0c, 1, 2, 3, 4]);
    assert.throws(() => encodeNatProbe(2 ** 32));
  });

  it('NatProbeReply round trip, IPv4 and IPv6, with and without the other sockets', () => {
    fc.assert(
      fc.property(arb.natProbeReply, (reply) => {
        const decoded = decodeNatProbeReply(encodeNatProbeReply(reply));
        assert.ok(decoded.ok, decoded.ok ? '' : decoded.error.message);
        assert.deepEqual(decoded.value, reply);
      }),
    );
  });

  it('NatProbeReply layout: token, source, then ip length, ip, port per endpoint (0: none)', () => {
    const bytes = encodeNatProbeReply({
      token: 7,
      source: 1,
      observed: { ip: '198.18.0.101', port: 4000 },
      otherPort: undefined,
      otherAddress: { ip: '198.18.0.11', port: 9001 },
    });
    assert.deepEqual(
      [...bytes],
      [NAT_PROBE_REPLY, 0, 0, 0, 7, 1, 4, 198, 18, 0, 101, 0x0f, 0xa0, 0, 4, 198, 18, 0, 11, 0x23, 0x29],
    );
  });

  it('rejects what is not a well-formed reply, with a typed error', () => {
    const good = Buffer.from(
      encodeNatProbeReply({
        token: 1,
        source: 0,
        observed: { ip: '198.18.0.1', port: 1 },
        otherPort: undefined,
        otherAddress: undefined,
      }),
    );
    const bad = (b: Uint8Array, code: string): void => {
      const r = decodeNatProbeReply(b);
      assert.equal(r.ok, false);
      if (!r.ok) assert.equal(r.error.code, code);
    };
    bad(good.subarray(0, 5), 'truncated');
    bad(Buffer.concat([Buffer.of(NAT_PROBE), good.subarray(1)]), 'bad_magic');
    bad(Buffer.concat([good.subarray(0, 5), Buffer.of(3), good.subarray(6)]), 'bad_value'); // source 3
    bad(Buffer.concat([good.subarray(0, 6), Buffer.of(5), good.subarray(7)]), 'bad_value'); // IP length 5
    bad(Buffer.concat([good.subarray(0, 6), Buffer.of(0, 0, 0)]), 'bad_value'); // no observed endpoint
    bad(good.subarray(0, good.length - 1), 'truncated'); // other address's length missing
    bad(good.subarray(0, 10), 'truncated');
    const probe = decodeNatProbe(Buffer.of(NAT_PROBE, 1, 2));
    assert.equal(probe.ok, false);
  });

  it('total decoders: random bytes and mutated encodings never throw', () => {
    const seeds = fc
      .sample(arb.natProbeReply, { numRuns: 64, seed: 0x5eed })
      .map((r) => Buffer.from(encodeNatProbeReply(r)));
    const mutated = fc
      .tuple(fc.constantFrom(...seeds), fc.nat(), fc.uint8Array({ maxLength: 8 }), fc.integer({ min: 0, max: 3 }))
      .map(([s, at, extra, how]) => {
        const b = Buffer.from(s);
        const i = at % Math.max(1, b.length);
        if (how === 0 && b.length > 0) b[i] = (b[i] as number) ^ 0xff;
        if (how === 1) return b.subarray(0, i);
        if (how === 2) return Buffer.concat([b.subarray(0, i), extra, b.subarray(i)]);
        if (how === 3 && b.length > 6) b[6 + (i % (b.length - 6))] = [0, 4, 16, 0xff][at % 4] as number;
        return b;
      });
    const input = fc.oneof(
      fc.uint8Array({ maxLength: 64 }),
      fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.concat([Buffer.of(NAT_PROBE_REPLY), b])),
      mutated,
    );
    fc.assert(
      fc.property(input, (b) => {
        for (const decode of [decodeNatProbeReply, decodeNatProbe]) {
          const r = decode(b);
          assert.equal(typeof r.ok, 'boolean');
          if (!r.ok) assert.equal(typeof r.error.code, 'string');
        }
        // A Go-compatible beacon decoder meets the new types too: it must refuse them, not throw.
        assert.equal(typeof decodeBeacon(b).ok, 'boolean');
      }),
      { numRuns: RUNS, seed: 0x5eed },
    );
  });
});

describe('natType', () => {
  it('names every combination of mapping and filtering', () => {
    const table: [Parameters<typeof natType>[0], Parameters<typeof natType>[1], ReturnType<typeof natType>][] = [
      ['none', 'none', 'none'],
      ['none', 'unknown', 'none'],
      ['endpoint-dependent', 'endpoint-independent', 'symmetric'],
      ['endpoint-dependent', 'address-and-port-dependent', 'symmetric'],
      ['endpoint-dependent', 'unknown', 'symmetric'],
      ['unknown', 'endpoint-independent', 'unknown'],
      ['endpoint-independent', 'endpoint-independent', 'full-cone'],
      ['endpoint-independent', 'address-dependent', 'restricted-cone'],
      ['endpoint-independent', 'address-and-port-dependent', 'port-restricted-cone'],
      ['endpoint-independent', 'unknown', 'unknown'],
      ['endpoint-independent', 'none', 'unknown'],
    ];
    for (const [m, f, want] of table) assert.equal(natType(m, f), want, `${m} + ${f}`);
  });
});
