import fc from 'fast-check';
import { assert, describe, it } from '#test';
import type { Codec } from '../codec/codec.ts';
import { isPouwError } from '../errors.ts';
import { StateProof } from '../state/state-tree.ts';
import * as payloads from './payloads.ts';
import {
  createTestChain,
  genesisOutpoint,
  makeTransfer,
  nextFinalizedBlock,
  plainOutput,
} from './testkit.ts';
import * as types from './types.ts';

const isCodec = (x: unknown): x is Codec<unknown> =>
  typeof x === 'object' && x !== null && 'decode' in x && 'ssz' in x;
/** Every chain codec, found by export so a new one is fuzzed without touching this file. */
const codecs: Codec<unknown>[] = (
  [...Object.values(types), ...Object.values(payloads), StateProof] as unknown[]
).filter(isCodec);

function onlyTypedErrors(codec: Codec<unknown>, bytes: Uint8Array): void {
  try {
    const v = codec.decode(bytes);
    assert.deepEqual(codec.encode(v), bytes, `${codec.typeName}: accepted bytes must be canonical`);
  } catch (e) {
    assert.ok(isPouwError(e) && e.name === 'DecodeError', `${codec.typeName}: untyped error ${String(e)}`);
  }
}

describe('chain codecs under fuzzing', () => {
  it('covers the chain types', () => {
    const names = codecs.map((c) => c.typeName);
    for (const n of [
      'Transaction',
      'Block',
      'BlockHeader',
      'FinalityCertificate',
      'TxOut',
      'OutPoint',
      'PayForTaskPayload',
      'BuyTicketsPayload',
      'StateProof',
    ]) {
      assert.ok(names.includes(n), `missing ${n}`);
    }
  });

  it('random bytes into every decoder fail only with a typed DecodeError', () => {
    for (const codec of codecs) {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: Math.min(codec.maxSize + 8, 2048) }), (b) =>
          onlyTypedErrors(codec, b),
        ),
        { numRuns: 150 },
      );
    }
  });

  it('limit + 1 is refused before decoding (codecs with a bound under 1 MiB)', () => {
    for (const codec of codecs) {
      if (codec.maxSize >= 1 << 20) continue; // blocks and transactions: bounded by chain params at the network edge
      assert.throws(
        () => codec.decode(new Uint8Array(codec.maxSize + 1)),
        { code: 'DECODE_OVERSIZED' },
        codec.typeName,
      );
    }
  });

  it('mutated and truncated real blocks and transactions fail typed or re-encode exactly', async () => {
    const chain = await createTestChain();
    const [a, b] = chain.accounts;
    const tx = await makeTransfer(chain, a!, [genesisOutpoint(chain, 0)], [plainOutput(b!.address, 5n)]);
    const { block, certificate } = await nextFinalizedBlock(chain);
    const samples: [Codec<unknown>, Uint8Array][] = [
      [types.Transaction as Codec<unknown>, types.Transaction.encode(tx)],
      [types.Block as Codec<unknown>, types.Block.encode(block)],
      [types.FinalityCertificate as Codec<unknown>, types.FinalityCertificate.encode(certificate)],
      [
        StateProof as Codec<unknown>,
        StateProof.encode(chain.ledger.proveUtxo(genesisOutpoint(chain, 1)).proof),
      ],
    ];
    for (const [codec, good] of samples) {
      assert.deepEqual(codec.encode(codec.decode(good)), good);
      for (let cut = 0; cut < good.length; cut += Math.max(1, Math.floor(good.length / 64)))
        onlyTypedErrors(codec, good.subarray(0, cut));
      fc.assert(
        fc.property(
          fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }),
          (edits) => {
            const m = good.slice();
            for (const [pos, byte] of edits) m[pos % m.length] = byte;
            onlyTypedErrors(codec, m);
          },
        ),
        { numRuns: 300 },
      );
    }
  });
});
