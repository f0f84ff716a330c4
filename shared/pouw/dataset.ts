/**
 * Datasets as the protocol sees them (DESIGN §3, §4.7): examples are bytes (uint8 features, then one
 * label byte), cut into S contiguous segments whose hashes the client commits to; the committee
 * later draws which segments become the hidden test set. Training batches follow a per-epoch
 * permutation seeded by the task id, and batch slots are dealt to miners in turn, so every
 * epoch covers every batch once and anyone can recompute who was to train which batch when.
 */
import { bytesToHex, concatBytes } from '../bytes.ts';
import { merkleRoot } from '../chain/ids.ts';
import { taggedHash } from '../codec/domain.ts';
import { WorkError } from '../errors.ts';
import { SeededStream } from './init.ts';

export interface Dataset {
  /** count × (featureBytes + 1) bytes: features then label, per example. */
  examples: Uint8Array;
  count: number;
  featureBytes: number;
}

export function exampleBytes(d: Dataset, i: number): Uint8Array {
  const stride = d.featureBytes + 1;
  return d.examples.subarray(i * stride, (i + 1) * stride);
}

/** Segment boundaries: S near-equal contiguous ranges. */
export function segmentRanges(count: number, segments: number): { start: number; end: number }[] {
  if (!Number.isInteger(segments) || segments < 1 || segments > count)
    throw new WorkError('TASK_INVALID', 'bad segment count');
  return Array.from({ length: segments }, (_, s) => ({
    start: Math.floor((s * count) / segments),
    end: Math.floor(((s + 1) * count) / segments),
  }));
}

export function segmentHash(chainId: string, d: Dataset, range: { start: number; end: number }): Uint8Array {
  const stride = d.featureBytes + 1;
  return taggedHash('pouw/task/v1', chainId, d.examples.subarray(range.start * stride, range.end * stride));
}

/** The client's commitment: Merkle root over the segment hashes. */
export function datasetCommitment(chainId: string, segmentHashes: readonly Uint8Array[]): Uint8Array {
  return merkleRoot(chainId, segmentHashes);
}

/**
 * Which segments become the test set: a permutation seeded by randomness drawn after the
 * commitment (consensus randomness in the network; any agreed bytes in tests).
 */
export function drawTestSegments(segments: number, testFraction: number, randomness: Uint8Array): number[] {
  const order = permutation(segments, randomness);
  return order.slice(0, Math.round(segments * testFraction)).sort((a, b) => a - b);
}

/** Fisher-Yates permutation of 0..n−1 from a seeded stream (rejection sampling: no modulo bias). */
export function permutation(n: number, seed: Uint8Array): number[] {
  const p = Array.from({ length: n }, (_, i) => i);
  const s = new SeededStream(seed);
  for (let i = n - 1; i > 0; i--) {
    const bound = i + 1;
    const limit = 2 ** 32 - (2 ** 32 % bound);
    let x = s.nextUint32();
    while (x >= limit) x = s.nextUint32();
    const j = x % bound;
    [p[i], p[j]] = [p[j]!, p[i]!];
  }
  return p;
}

/** Example indices (into the training examples) of batch `batchId` in `epoch`. */
export function batchIndices(
  taskId: Uint8Array,
  epoch: number,
  batchId: number,
  trainCount: number,
  batchSize: number,
): number[] {
  const key = `${bytesToHex(taskId)}/${epoch}/${trainCount}`;
  let order = epochOrders.get(key);
  if (order === undefined) {
    const e = new Uint8Array(4);
    new DataView(e.buffer).setUint32(0, epoch, true);
    order = permutation(trainCount, concatBytes(taskId, e));
    epochOrders.set(key, order);
    // A miner and a verifier touch at most a couple of epochs at a time.
    if (epochOrders.size > 8) epochOrders.delete(epochOrders.keys().next().value!);
  }
  return order.slice(batchId * batchSize, (batchId + 1) * batchSize);
}
const epochOrders = new Map<string, number[]>();

/**
 * Batch slot of a miner's iteration: slot = iteration·minerCount + minerIndex; slots run through
 * the epoch's batches in order. Miner indices follow the task's sorted miner list.
 */
export function assignedBatch(
  minerIndex: number,
  minerCount: number,
  iteration: number,
  batchesPerEpoch: number,
): { epoch: number; batchId: number } {
  const slot = iteration * minerCount + minerIndex;
  return { epoch: Math.floor(slot / batchesPerEpoch), batchId: slot % batchesPerEpoch };
}

/** Features as floats in [0, 1] and labels for the given training examples. */
export function batchTensors(
  d: Dataset,
  indices: readonly number[],
): { x: Float32Array; labels: Uint8Array } {
  const x = new Float32Array(indices.length * d.featureBytes);
  const labels = new Uint8Array(indices.length);
  indices.forEach((idx, row) => {
    const e = exampleBytes(d, idx);
    for (let j = 0; j < d.featureBytes; j++) x[row * d.featureBytes + j] = e[j]! / 255;
    labels[row] = e[d.featureBytes]!;
  });
  return { x, labels };
}
