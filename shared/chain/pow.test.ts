import fc from 'fast-check';
import { assert, describe, it } from '#test';
import { DEVNET_PARAMS } from './genesis.ts';
import { merkleProof, merkleRoot, verifyMerkleProof } from './ids.ts';
import { bitsToTarget, blockSubsidy, nextBits, targetToBits } from './pow.ts';

describe('proof of work: compact targets', () => {
  it('decodes known Bitcoin encodings', () => {
    assert.equal(bitsToTarget(0x1d00ffff), 0xffffn << 208n);
    assert.equal(bitsToTarget(0x207fffff), 0x7fffffn << 232n);
    assert.equal(bitsToTarget(0x03123456), 0x123456n);
  });

  it('round-trips every target through its canonical encoding', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 1n, max: (1n << 255n) - 1n }), (t) => {
        const bits = targetToBits(t);
        const back = bitsToTarget(bits);
        assert.ok(back <= t, 'compact form rounds down');
        assert.equal(targetToBits(back), bits);
      }),
      { numRuns: 500 },
    );
  });

  it('rejects negative, zero, overflowing and non-canonical encodings with BLOCK_BAD_BITS', () => {
    for (const bits of [0x1d80ffff, 0x1d000000, 0x2200ffff, 0x1d0000ff, 0x01003456, -1, 2 ** 32]) {
      assert.throws(() => bitsToTarget(bits), { name: 'LedgerError', code: 'BLOCK_BAD_BITS' });
    }
  });
});

describe('proof of work: retargeting', () => {
  const params = {
    ...DEVNET_PARAMS,
    retargetWindow: 10,
    blockIntervalMs: 1000n,
    initialBits: 0x1f00ffff,
    powLimitBits: 0x207fffff,
  };
  const times = (interval: bigint) => (h: bigint) => h * interval;

  it('keeps the target inside a window and at height 1 uses initialBits', () => {
    assert.equal(nextBits(params, 1n, 0, times(1000n)), params.initialBits);
    assert.equal(nextBits(params, 5n, 0x1e00ffff, times(1000n)), 0x1e00ffff);
  });

  it('moves toward the interval, clamped to 4x, never easier than powLimit', () => {
    const prev = 0x1e00ffff;
    const base = bitsToTarget(prev);
    // On time: unchanged (up to compact rounding).
    assert.equal(bitsToTarget(nextBits(params, 11n, prev, times(1000n))), base);
    // Twice as slow: target doubles (easier).
    assert.equal(
      bitsToTarget(nextBits(params, 11n, prev, times(2000n))),
      bitsToTarget(targetToBits(base * 2n)),
    );
    // Twice as fast: target halves.
    assert.equal(
      bitsToTarget(nextBits(params, 11n, prev, times(500n))),
      bitsToTarget(targetToBits(base / 2n)),
    );
    // 100x slower: clamped to 4x.
    assert.equal(
      bitsToTarget(nextBits(params, 11n, prev, times(100_000n))),
      bitsToTarget(targetToBits(base * 4n)),
    );
    // Already at the limit: stays there.
    assert.equal(nextBits(params, 11n, params.powLimitBits, times(100_000n)), params.powLimitBits);
  });

  it('halves the subsidy every halvingInterval blocks and mints nothing at genesis', () => {
    const p = { ...params, initialReward: 1000n, halvingInterval: 10n };
    assert.equal(blockSubsidy(p, 0n), 0n);
    assert.equal(blockSubsidy(p, 1n), 1000n);
    assert.equal(blockSubsidy(p, 10n), 1000n);
    assert.equal(blockSubsidy(p, 11n), 500n);
    assert.equal(blockSubsidy(p, 10n * 70n), 0n);
  });
});

describe('transaction Merkle tree', () => {
  const leaf = (i: number) => new Uint8Array(32).fill(i + 1);
  it('proves every leaf for every size, and rejects a wrong leaf, index or count', () => {
    for (let n = 1; n <= 9; n++) {
      const leaves = Array.from({ length: n }, (_, i) => leaf(i));
      const root = merkleRoot('devnet', leaves);
      for (let i = 0; i < n; i++) {
        const path = merkleProof('devnet', leaves, i);
        assert.ok(verifyMerkleProof('devnet', root, leaves[i]!, i, n, path), `n=${n} i=${i}`);
        assert.ok(!verifyMerkleProof('devnet', root, leaf(99), i, n, path));
        if (n > 1) assert.ok(!verifyMerkleProof('devnet', root, leaves[i]!, (i + 1) % n, n, path));
        assert.ok(!verifyMerkleProof('devnet', root, leaves[i]!, i, n + 1, path));
      }
    }
  });

  it('trees of different sizes never share a root (no duplicate-last ambiguity)', () => {
    const three = [leaf(0), leaf(1), leaf(2)];
    assert.notEqual(
      merkleRoot('devnet', three).toString(),
      merkleRoot('devnet', [...three, leaf(2)]).toString(),
    );
  });
});
