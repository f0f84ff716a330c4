/**
 * The tasks a LoopbackNetwork serves: the UI's demo (the paper's FC-DNN on the packed MNIST digits,
 * with the hyper-parameters tests/pouw/training.node.test.ts tuned to ≥ 95% held-out accuracy) and
 * a tiny one for tests (one softmax layer, one epoch). Both commit to the packed file cut into 10
 * segments, the last two held out: the split every MNIST task of this repository uses.
 */
import { targetToBits } from '../shared/chain/pow.ts';
import type { Dataset } from '../shared/pouw/dataset.ts';
import { denseSoftmaxTask, float32Bits, mnistMlpTask, type TaskDefinition } from '../shared/pouw/task.ts';
import { commitDataset, type DatasetSpec, gunzipIfNeeded } from './data/committed.ts';
import { mnistExamples } from './data/mnist.ts';
import { LOOPBACK_CHAIN_ID, LoopbackNetwork, type LoopbackOptions } from './loopback.ts';

export const MNIST_SPLIT: Omit<DatasetSpec, 'url'> = { segments: 10, testSegments: [8, 9] };

/**
 * 784-128-64-10, η = 0.4, τ = 1, B = 100, R = 10, k = 5; ~1,880 nonces per iteration. 50 epochs:
 * a few minutes of a demo tab (≥ 95% held-out accuracy is reached after about 12).
 */
export function demoMnistTask(commitment: Uint8Array, epochs = 50): TaskDefinition {
  return mnistMlpTask({
    learningRate: float32Bits(0.4),
    tau: float32Bits(1),
    batchSize: 100,
    epochs,
    segmentLength: 10,
    znbLead: 5,
    datasetCommitment: commitment,
    trainSize: 8000,
  });
}

/** One dense softmax layer (7,850 weights), B = 50, R = 4, k = 2, one epoch; ~390 nonces per iteration. */
export function tinyMnistTask(commitment: Uint8Array): TaskDefinition {
  return denseSoftmaxTask(784, 10, {
    initSeed: new Uint8Array(32).fill(7),
    learningRate: float32Bits(0.4),
    tau: float32Bits(1),
    batchSize: 50,
    znbLead: 2,
    segmentLength: 4,
    omegaBPpm: 10_000,
    epochs: 1,
    datasetCommitment: commitment,
    trainSize: 8000,
  });
}

/** The packed file's examples and their commitment under the loopback chain id. */
export async function committedMnist(raw: Uint8Array): Promise<{ full: Dataset; commitment: Uint8Array }> {
  const full = mnistExamples(await gunzipIfNeeded(raw));
  return { full, commitment: commitDataset(LOOPBACK_CHAIN_ID, full, MNIST_SPLIT).commitment };
}

/**
 * Target of the demo's first blocks: about one block per 20 iterations at ~1,880 nonces each; the
 * chain then retargets toward one block per 3 s.
 */
export const DEMO_INITIAL_BITS = targetToBits(1n << 241n);

export interface DemoNetworkOptions {
  /** The packed MNIST bytes (gzip or not), to commit to. */
  raw: Uint8Array;
  /** Absolute URL the volunteers fetch the same bytes from. */
  url: string;
  /** Volunteers the task waits for (the page's own and its demo peers). */
  minerSlots: number;
  task?: 'demo' | 'tiny';
  extra?: Partial<LoopbackOptions>;
}

export async function createDemoNetwork(o: DemoNetworkOptions): Promise<LoopbackNetwork> {
  const { commitment } = await committedMnist(o.raw);
  return LoopbackNetwork.create({
    task: o.task === 'tiny' ? tinyMnistTask(commitment) : demoMnistTask(commitment),
    dataset: { url: o.url, ...MNIST_SPLIT },
    minerSlots: o.minerSlots,
    initialBits: DEMO_INITIAL_BITS,
    ...o.extra,
  });
}
