/**
 * Portable unit tests of the verifier's arithmetic and data binding (Node and Chromium): the
 * allowance penalty for in-band choices and its grinding bound, the default tolerances, and the
 * training data's binding to the dataset commitment. The replay itself is tested with the real
 * TF.js engines in verify.node.test.ts and verify.browser.test.ts.
 */
import { assert, describe, it } from '#test';
import { type Dataset, datasetCommitment, segmentHash, segmentRanges } from './dataset.ts';
import { bitsToFloat32, float32Bits, mnistMlpTask } from './task.ts';
import {
  CommittedDataset,
  defaultTolerances,
  EPSILON_OVER_TAU,
  effectiveAllowance,
  FLIP_PENALTY,
} from './verify.ts';

const CHAIN = 'pouw-test';

function binomial(n: number, k: number): number {
  let r = 1;
  for (let i = 1; i <= k; i++) r = (r * (n - k + i)) / i;
  return r;
}

describe('in-band choices and the nonce allowance', () => {
  it('no choice keeps the whole allowance; each choice divides it by λ·s·(1 + c)', () => {
    const its = (flips: number[], inBand: number) => flips.map((f) => ({ flips: f, inBand }));
    assert.equal(effectiveAllowance(1878, its([0, 0, 0], 85)), 1878);
    assert.equal(effectiveAllowance(1878, its([0, 1, 0], 5), 1), Math.floor(1878 / (3 * 6)));
    assert.equal(effectiveAllowance(1878, its([0, 1, 0], 5)), Math.floor(1878 / (FLIP_PENALTY * 3 * 6)));
    assert.equal(effectiveAllowance(1878, its([1, 1], 0), 1), Math.floor(1878 / 4));
    assert.equal(effectiveAllowance(1878, its([4, 4, 4, 4], 300)), 0);
  });

  it('grinding every subset of in-band entries in every iteration earns at most e^{1/λ}·a tickets', () => {
    const a = 1_000_000;
    for (const lambda of [1, 10, FLIP_PENALTY]) {
      for (const s of [1, 3, 10]) {
        for (const c of [0, 1, 5, 85, 400]) {
          // One iteration's alternatives: C(c, f) maps with f choices each; the others held honest.
          let perIteration = 0;
          for (let f = 0; f <= Math.min(c, 8); f++) {
            const rest = Array.from({ length: s - 1 }, () => ({ flips: 0, inBand: c }));
            perIteration +=
              binomial(c, f) * effectiveAllowance(a, [{ flips: f, inBand: c }, ...rest], lambda);
          }
          // Over the s iterations of the segment the factors multiply.
          const total = a * (perIteration / a) ** s;
          assert.ok(total <= a * Math.exp(1 / lambda) + 1, `λ=${lambda} s=${s} c=${c}: ${total / a}× a`);
        }
      }
    }
  });

  it('ε scales with τ', () => {
    for (const tau of [0.01, 1]) {
      const t = defaultTolerances(mnistMlpTask({ tau: float32Bits(tau) }));
      assert.ok(Math.abs(t.epsilon - EPSILON_OVER_TAU * bitsToFloat32(float32Bits(tau))) < 1e-12);
      assert.ok(t.maxFlipsPerIteration >= 1 && t.flipPenalty >= 1);
    }
  });
});

describe('training data bound to the dataset commitment', () => {
  // 40 examples of 4 feature bytes + a label, 4 segments of 10; segment 2 is the test set.
  const full: Dataset = {
    examples: Uint8Array.from({ length: 40 * 5 }, (_, i) => (i % 5 === 4 ? (i >> 3) % 3 : (i * 37) & 0xff)),
    count: 40,
    featureBytes: 4,
  };
  const ranges = segmentRanges(40, 4);
  const hashes = ranges.map((r) => segmentHash(CHAIN, full, r));
  const task = mnistMlpTask({
    inputShape: [4],
    numClasses: 3,
    layers: [{ kind: 0, units: 3, kernelSize: 0, stride: 0, padding: 0, activation: 3 }],
    batchSize: 5,
    trainSize: 30,
    datasetCommitment: datasetCommitment(CHAIN, hashes),
  });
  const train = (mutate?: (e: Uint8Array) => void): Dataset => {
    const examples = new Uint8Array(30 * 5);
    examples.set(full.examples.subarray(0, 100), 0);
    examples.set(full.examples.subarray(150, 200), 100);
    mutate?.(examples);
    return { examples, count: 30, featureBytes: 4 };
  };
  const proof = {
    segmentHashes: hashes,
    trainRanges: [
      { segment: 0, start: 0, end: 10 },
      { segment: 1, start: 10, end: 20 },
      { segment: 3, start: 20, end: 30 },
    ],
  };

  it('serves batches from committed segments', () => {
    const data = new CommittedDataset(CHAIN, task, train(), proof);
    const b = data.batch([0, 15, 29]);
    assert.equal(b.labels.length, 3);
    assert.equal(b.x.length, 12);
    assert.equal(b.x[0], full.examples[0]! / 255);
  });

  it('rejects data that does not match a touched segment, lazily and by segment', () => {
    const data = new CommittedDataset(
      CHAIN,
      task,
      train((e) => (e[25 * 5]! ^= 1)),
      proof,
    );
    data.batch([0, 1, 12]); // segments 0 and 1 are intact
    assert.throws(() => data.batch([3, 25]), { code: 'VERIFY_BATCH' });
    assert.throws(() => data.batch([40]), { code: 'VERIFY_BATCH' });
  });

  it('rejects a proof that does not match the commitment or does not tile the training set', () => {
    const other = [...hashes];
    other[2] = new Uint8Array(32);
    assert.throws(() => new CommittedDataset(CHAIN, task, train(), { ...proof, segmentHashes: other }), {
      code: 'VERIFY_BATCH',
    });
    assert.throws(
      () =>
        new CommittedDataset(CHAIN, task, train(), { ...proof, trainRanges: proof.trainRanges.slice(0, 2) }),
      { code: 'VERIFY_BATCH' },
    );
    const overlapping = [proof.trainRanges[0]!, { segment: 1, start: 5, end: 20 }, proof.trainRanges[2]!];
    assert.throws(() => new CommittedDataset(CHAIN, task, train(), { ...proof, trainRanges: overlapping }), {
      code: 'VERIFY_BATCH',
    });
    const twice = [proof.trainRanges[0]!, proof.trainRanges[1]!, { segment: 1, start: 20, end: 30 }];
    assert.throws(() => new CommittedDataset(CHAIN, task, train(), { ...proof, trainRanges: twice }), {
      code: 'VERIFY_BATCH',
    });
    assert.throws(() => new CommittedDataset(CHAIN, { ...task, trainSize: 31 }, train(), proof), {
      code: 'VERIFY_BATCH',
    });
  });
});
