import { sha256 } from '@noble/hashes/sha2.js';
import { assert, describe, it } from '#test';
import { concatBytes, utf8 } from '../bytes.ts';
import * as bls from './bls.ts';
import {
  combine,
  combineRobust,
  dealShares,
  interpolateSecret,
  lagrangeCoefficientsAtZero,
  type PartialSignature,
  partialSign,
  verifyPartial,
} from './threshold-bls.ts';

function seeded(seed: string): bls.RandomBytes {
  let counter = 0;
  return (n) => {
    const out = new Uint8Array(n);
    for (let off = 0; off < n; off += 32) {
      const block = sha256(concatBytes(utf8(seed), Uint8Array.of(counter >> 8, counter & 0xff)));
      counter++;
      out.set(block.subarray(0, Math.min(32, n - off)), off);
    }
    return out;
  };
}

function subsets<T>(items: readonly T[], k: number): T[][] {
  if (k === 0) return [[]];
  if (items.length < k) return [];
  const [first, ...rest] = items;
  return [...subsets(rest, k - 1).map((s) => [first!, ...s]), ...subsets(rest, k)];
}

const n = 4;
const t = 3;
const groupSecret = bls.keyGen(new Uint8Array(32).fill(9));
const keys = dealShares(n, t, { secretKey: groupSecret, randomBytes: seeded('threshold') });
const message = utf8('finalize block 7');
const partials: PartialSignature[] = keys.shares.map((s) => partialSign(s, message));
const expected = bls.sign(groupSecret, message);

describe('threshold-bls: dealing', () => {
  it('the dealer split is consistent: group key, public shares, any t shares give the secret', () => {
    assert.deepEqual(keys.groupPublicKey, bls.getPublicKey(groupSecret));
    keys.shares.forEach((s, k) => {
      assert.equal(s.index, k + 1);
      assert.deepEqual(bls.getPublicKey(s.secretKey), keys.publicShares[k]);
    });
    for (const subset of subsets(keys.shares, t)) assert.deepEqual(interpolateSecret(subset, t), groupSecret);
    assert.throws(() => interpolateSecret(keys.shares.slice(0, t - 1), t), {
      code: 'CRYPTO_NOT_ENOUGH_SHARES',
    });
  });

  it('rejects bad parameters and is deterministic under injected randomness', () => {
    assert.throws(() => dealShares(3, 4), { name: 'CryptoError', code: 'CRYPTO_BAD_PARAMETER' });
    assert.throws(() => dealShares(3, 0), { code: 'CRYPTO_BAD_PARAMETER' });
    const a = dealShares(3, 2, { randomBytes: seeded('x') });
    const b = dealShares(3, 2, { randomBytes: seeded('x') });
    assert.deepEqual(a, b);
  });

  it('Lagrange coefficients at 0 sum to 1', () => {
    for (const set of [[1, 2, 3], [2, 4, 7, 9], [5]]) {
      const sum = lagrangeCoefficientsAtZero(set).reduce((acc, l) => bls.Fr.add(acc, l), 0n);
      assert.equal(sum, 1n, set.join(','));
    }
  });
});

describe('threshold-bls: partials and combine (n=4, t=3)', () => {
  it('each partial verifies against its own public share only', () => {
    partials.forEach((p, k) => {
      assert.ok(verifyPartial(keys.publicShares[k]!, message, p), `partial ${p.index}`);
    });
    assert.ok(!verifyPartial(keys.publicShares[1]!, message, partials[0]!));
    assert.ok(!verifyPartial(keys.publicShares[0]!, utf8('other'), partials[0]!));
    assert.ok(!verifyPartial(keys.publicShares[0]!, message, new Uint8Array(96)));
  });

  it('every t-subset combines to the same signature, which plain verify accepts', () => {
    const combined = subsets(partials, t).map((subset) => combine(subset, t));
    assert.equal(combined.length, 4);
    for (const sig of combined) assert.deepEqual(sig, expected);
    assert.ok(bls.verify(keys.groupPublicKey, message, combined[0]!));
    // More than t partials: the lowest t are used; the result is the same.
    assert.deepEqual(combine([...partials].reverse(), t), expected);
  });

  it('checks partials against public shares (one batch check) when given', () => {
    const sig = combine(partials, t, { publicShares: keys.publicShares, message, randomBytes: seeded('b') });
    assert.deepEqual(sig, expected);
    assert.throws(() => combine(partials, t, { publicShares: keys.publicShares }), {
      code: 'CRYPTO_BAD_PARAMETER',
    });
  });

  it('t−1 partials are not enough', () => {
    assert.throws(() => combine(partials.slice(0, t - 1), t), {
      name: 'CryptoError',
      code: 'CRYPTO_NOT_ENOUGH_SHARES',
    });
  });

  it('duplicate indices and indices outside 1..n are rejected', () => {
    const e = assert.throws(() => combine([partials[0]!, partials[1]!, partials[0]!], t), {
      code: 'CRYPTO_DUPLICATE_SHARE',
    });
    assert.equal((e as unknown as { detail: { index: number } }).detail.index, 1);
    assert.throws(() => combine([{ ...partials[0]!, index: 0 }, partials[1]!, partials[2]!], t), {
      code: 'CRYPTO_BAD_INDEX',
    });
    assert.throws(() => combine([{ ...partials[0]!, index: 5 }, partials[1]!, partials[2]!], t, { n }), {
      code: 'CRYPTO_BAD_INDEX',
    });
    assert.throws(() => combine([{ ...partials[0]!, index: 1.5 }, partials[1]!, partials[2]!], t), {
      code: 'CRYPTO_BAD_INDEX',
    });
  });

  it('a bad partial is named', () => {
    // Party 3 sends party 2's partial under its own index; party 4 sends garbage.
    const forged = [partials[0]!, partials[1]!, { index: 3, signature: partials[1]!.signature }];
    const e = assert.throws(() => combine(forged, t, { publicShares: keys.publicShares, message }), {
      name: 'CryptoError',
      code: 'CRYPTO_BAD_PARTIAL',
    });
    assert.equal((e as unknown as { detail: { index: number } }).detail.index, 3);
    const garbage = [partials[0]!, partials[1]!, { index: 4, signature: new Uint8Array(96).fill(0xff) }];
    const e2 = assert.throws(() => combine(garbage, t), { code: 'CRYPTO_BAD_PARTIAL' });
    assert.equal((e2 as unknown as { detail: { index: number } }).detail.index, 4);
  });

  it('combineRobust skips bad partials, names them, and still needs t good ones', () => {
    const withBad = [
      partials[0]!,
      { index: 2, signature: partials[2]!.signature },
      partials[2]!,
      partials[3]!,
    ];
    const r = combineRobust(withBad, t, {
      publicShares: keys.publicShares,
      message,
      randomBytes: seeded('r'),
    });
    assert.deepEqual(r.bad, [2]);
    assert.deepEqual(r.used, [1, 3, 4]);
    assert.deepEqual(r.signature, expected);
    const twoBad = [
      partials[0]!,
      { index: 2, signature: partials[2]!.signature },
      partials[2]!,
      { index: 9, signature: partials[3]!.signature },
    ];
    const e = assert.throws(() => combineRobust(twoBad, t, { publicShares: keys.publicShares, message }), {
      code: 'CRYPTO_NOT_ENOUGH_SHARES',
    });
    assert.deepEqual((e as unknown as { detail: { bad: number[] } }).detail.bad, [2, 9]);
  });
});
