import {
  BitArray,
  BitListType,
  BooleanType,
  ByteListType,
  ContainerType,
  ListBasicType,
  UintNumberType,
} from '@chainsafe/ssz';
import fc from 'fast-check';
import { assert, describe, it } from '#test';
import { hexToBytes } from '../bytes.ts';
import { isPouwError } from '../errors.ts';
import { type Codec, defineCodec } from './codec.ts';
import * as codecs from './index.ts';

/** Every codec the module exports; new codecs are fuzzed without touching this file. */
const allCodecs: Codec<unknown>[] = (Object.values(codecs) as unknown[]).filter(
  (x): x is Codec<unknown> => typeof x === 'object' && x !== null && 'decode' in x && 'ssz' in x,
);

// A variable-size container exercises offsets, booleans and bit lists: the places where SSZ has
// byte strings that deserialize but are not canonical.
const Sample = defineCodec(
  'Sample',
  new ContainerType({
    flag: new BooleanType(),
    count: new UintNumberType(2),
    note: new ByteListType(8),
    bits: new BitListType(16),
    values: new ListBasicType(new UintNumberType(1), 4),
  }),
);

function expectDecodeError(codec: Codec<unknown>, bytes: Uint8Array, code?: string): void {
  assert.throws(() => codec.decode(bytes), {
    name: 'DecodeError',
    verdict: 'REJECT',
    ...(code ? { code } : {}),
  });
}

describe('codec', () => {
  it('exports the primitive codecs', () => {
    const names = allCodecs.map((c) => c.typeName);
    for (const n of [
      'Bytes32',
      'Amount',
      'AddressBytes',
      'Ed25519PublicKey',
      'Ed25519Signature',
      'BlsPublicKey',
      'BlsSignature',
    ]) {
      assert.ok(names.includes(n), `missing codec ${n}`);
    }
  });

  it('round-trips every codec on arbitrary valid values', () => {
    for (const codec of allCodecs) {
      fc.assert(
        fc.property(fc.uint8Array({ minLength: codec.minSize, maxLength: codec.maxSize }), (bytes) => {
          // Only fixed-size byte types and uints take arbitrary bytes; decode what decodes.
          let value: unknown;
          try {
            value = codec.decode(bytes);
          } catch (e) {
            assert.ok(
              isPouwError(e) && e.name === 'DecodeError',
              `${codec.typeName}: untyped error ${String(e)}`,
            );
            return;
          }
          const again = codec.encode(value);
          assert.deepEqual(again, bytes, `${codec.typeName} re-encodes to the accepted bytes`);
          assert.ok(codec.equals(codec.decode(again), value));
        }),
        { numRuns: 200 },
      );
    }
  });

  it('round-trips a variable-size container', () => {
    const arb = fc.record({
      flag: fc.boolean(),
      count: fc.integer({ min: 0, max: 0xffff }),
      note: fc.uint8Array({ maxLength: 8 }),
      bits: fc.array(fc.boolean(), { maxLength: 16 }),
      values: fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 4 }),
    });
    fc.assert(
      fc.property(arb, (v) => {
        const value = { ...v, bits: BitArray.fromBoolArray(v.bits) } as never;
        const bytes = Sample.encode(value);
        const decoded = Sample.decode(bytes);
        assert.ok(Sample.equals(decoded, value));
        assert.deepEqual(Sample.encode(decoded), bytes);
      }),
      { numRuns: 300 },
    );
  });

  it('rejects oversized input before decoding (limit + 1)', () => {
    for (const codec of allCodecs) {
      expectDecodeError(codec, new Uint8Array(codec.maxSize + 1), 'DECODE_OVERSIZED');
    }
    expectDecodeError(Sample, new Uint8Array(Sample.maxSize + 1), 'DECODE_OVERSIZED');
  });

  it('rejects truncated input', () => {
    for (const codec of allCodecs) {
      if (codec.minSize > 0) expectDecodeError(codec, new Uint8Array(codec.minSize - 1), 'DECODE_UNDERSIZED');
    }
    const bytes = Sample.encode(Sample.defaultValue());
    for (let cut = 0; cut < bytes.length; cut++) expectDecodeError(Sample, bytes.subarray(0, cut));
  });

  it('rejects non-canonical encodings', () => {
    const value = Sample.defaultValue();
    const bytes = Sample.encode(value);
    // flag = 2 is not a boolean.
    const badBool = bytes.slice();
    badBool[0] = 2;
    expectDecodeError(Sample, badBool);
    // Bit list whose padding is missing its delimiter bit (all-zero last byte).
    const withBits = Sample.encode({ ...value, bits: BitArray.fromBoolArray([true, false]) } as never);
    const zeroed = withBits.slice();
    zeroed[zeroed.length - 1] = 0;
    expectDecodeError(Sample, zeroed);
    // Uint64 amount: every 8-byte string is canonical, a 9-byte one is not an amount.
    expectDecodeError(codecs.Amount, hexToBytes('010000000000000000'), 'DECODE_OVERSIZED');
  });

  it('rejects values of the wrong type', () => {
    for (const codec of allCodecs) {
      for (const bad of [null, undefined, 'abc', 42, [1, 2, 3], new Uint16Array(4)]) {
        expectDecodeError(codec, bad as unknown as Uint8Array, 'DECODE_WRONG_TYPE');
      }
    }
  });

  it('fuzz: random bytes into every decoder fail only with a typed DecodeError', () => {
    for (const codec of [...allCodecs, Sample as Codec<unknown>]) {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: Math.min(codec.maxSize + 8, 512) }), (bytes) => {
          try {
            const v = codec.decode(bytes);
            assert.deepEqual(codec.encode(v), bytes, `${codec.typeName}: accepted bytes must be canonical`);
          } catch (e) {
            assert.ok(
              isPouwError(e) && e.name === 'DecodeError',
              `${codec.typeName}: untyped error ${String(e)}`,
            );
          }
        }),
        { numRuns: 300 },
      );
    }
  });

  it('fuzz: mutated valid encodings either decode canonically or fail typed', () => {
    const arb = fc.tuple(
      fc.record({
        flag: fc.boolean(),
        count: fc.integer({ min: 0, max: 0xffff }),
        note: fc.uint8Array({ maxLength: 8 }),
        values: fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 4 }),
      }),
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
    );
    fc.assert(
      fc.property(arb, ([v, edits]) => {
        const bytes = Sample.encode({ ...v, bits: BitArray.fromBoolArray([true]) } as never).slice();
        for (const [pos, byte] of edits) bytes[pos % bytes.length] = byte;
        try {
          const decoded = Sample.decode(bytes);
          assert.deepEqual(Sample.encode(decoded), bytes);
        } catch (e) {
          assert.ok(isPouwError(e) && e.name === 'DecodeError', `untyped error ${String(e)}`);
        }
      }),
      { numRuns: 500 },
    );
  });
});
