/**
 * A PoUW training run on real MNIST under Node, shared by tests/pouw/training.node.test.ts and
 * bench/pouw.ts: N miners (each its own TF.js engine) exchange IT_RES over the seeded bus and mine
 * on real chain templates; the same model is also trained by plain dense TF.js SGD with the same
 * initial weights, η, batches and epochs. The caller asserts; this module only runs and measures.
 */
import * as tf from '@tensorflow/tfjs-core';
import { nodeCryptoEd25519 } from '../../node-common/ed25519-node.ts';
import { bytesToHex } from '../../shared/bytes.ts';
import { targetToBits } from '../../shared/chain/pow.ts';
import { buildBlockTemplate } from '../../shared/chain/template.ts';
import { createTestChain, GENESIS_TIME, TEST_PARAMS, testAccount } from '../../shared/chain/testkit.ts';
import type { BlockCandidate } from '../../shared/pouw/candidate.ts';
import {
  batchIndices,
  batchTensors,
  type Dataset,
  datasetCommitment,
  segmentHash,
  segmentRanges,
} from '../../shared/pouw/dataset.ts';
import type { Batch } from '../../shared/pouw/engine.ts';
import { Miner } from '../../shared/pouw/miner.ts';
import {
  batchesPerEpoch,
  float32Bits,
  mnistMlpTask,
  type TaskDefinition,
  taskId,
  validateTask,
} from '../../shared/pouw/task.ts';
import {
  CommittedDataset,
  type DatasetCommitmentProof,
  type VerifyContext,
} from '../../shared/pouw/verify.ts';
import { datasetFromImages, MemoryHistory } from '../../shared/pouw/verify-fixtures.ts';
import { MNIST_TRAIN_SIZE, mnistHeldOut } from '../../web-worker-node/data/mnist.ts';
import { loadMnistNode } from '../../web-worker-node/data/mnist-node.ts';
import {
  createPlainSgd,
  createTfjsEngine,
  type PlainSgdModel,
  plainSgdStep,
} from '../../web-worker-node/trainer/engine-tfjs.ts';
import { type BusOptions, type BusStats, ItResBus } from './bus.ts';
import { type NodeMiningService, nodeDigest, nodeMiningService } from './mining-worker.ts';

/**
 * The tuned task: mnistMlpTask with η = 0.4, τ = 1, B = 100, R = 10, 12 epochs. τ is set against
 * the batch-SUMMED gradient: one lattice step moves a weight by u = η·τ/B and a weight moves at most
 * once per iteration, so τ far below a typical summed gradient entry throttles learning and makes
 * maps dense (τ = 0.05: half the weights in every map, 90% after 3 epochs), τ far above it starves
 * small weights (τ = 4: 1% of the weights per map, 90% after 3 epochs against 94% for dense SGD).
 * τ = 1 keeps ≈ 3% of the weights per map and trains about as well as dense SGD. Measured here
 * (3 miners, final held-out accuracy of each; plain SGD beside): η 0.3 / 10 epochs 95.4–95.6% (plain
 * 95.8%); η 0.3 / 12 epochs 95.2–96.2% (95.95%); η 0.4 / 12 epochs 95.6–96.0% (96.3%); η 0.5 /
 * 12 epochs 95.5–95.7% (96.4%); η 0.2 / 16 epochs 95.3–95.7%; R = 20 or 40 no better. Each miner's
 * final model varies by about ±0.5% with any change to the run (seeds, order of float operations).
 */
export function tunedMnistTask(
  commitment: Uint8Array,
  overrides: Partial<TaskDefinition> = {},
): TaskDefinition {
  return mnistMlpTask({
    learningRate: float32Bits(0.4),
    tau: float32Bits(1),
    batchSize: 100,
    epochs: 12,
    segmentLength: 10,
    znbLead: 5,
    datasetCommitment: commitment,
    trainSize: MNIST_TRAIN_SIZE,
    ...overrides,
  });
}

export interface MnistSplit {
  train: Dataset;
  heldOut: Batch;
  proof: DatasetCommitmentProof;
  commitment: Uint8Array;
}

/** MNIST as the protocol sees it: 10 committed segments of 1,000; the first 8 train, the last 2 are held out. */
export function mnistSplit(chainId: string): MnistSplit {
  const mnist = loadMnistNode();
  const full = datasetFromImages(mnist);
  const ranges = segmentRanges(full.count, 10);
  const segmentHashes = ranges.map((r) => segmentHash(chainId, full, r));
  const stride = full.featureBytes + 1;
  return {
    train: {
      examples: full.examples.slice(0, MNIST_TRAIN_SIZE * stride),
      count: MNIST_TRAIN_SIZE,
      featureBytes: full.featureBytes,
    },
    heldOut: mnistHeldOut(mnist),
    proof: {
      segmentHashes,
      trainRanges: ranges.slice(0, 8).map((r, segment) => ({ segment, start: r.start, end: r.end })),
    },
    commitment: datasetCommitment(chainId, segmentHashes),
  };
}

export function plainAccuracy(m: PlainSgdModel, batch: Batch): number {
  return tf.tidy(() => {
    const b = batch.labels.length;
    const out = m.model.forward(tf.tensor2d(batch.x, [b, batch.x.length / b]), m.variables);
    const hits = tf.equal(tf.argMax(out, 1), tf.tensor1d(Int32Array.from(batch.labels), 'int32'));
    return tf.mean(tf.cast(hits, 'float32')).dataSync()[0]!;
  });
}

export interface TrainingRunOptions {
  chainId: string;
  def: TaskDefinition;
  split: MnistSplit;
  backend: string;
  miners?: number;
  bus?: BusOptions;
  /** Block target: 2^log2Target (default 2^242: about one candidate per 8 iterations at a ≈ 1,878). */
  log2Target?: bigint;
  /** Whether engine.step(batch, true) flushes; else the miner emulates it. */
  flushInStep: boolean;
  /** Miner option `residual` (default 'device'). */
  residual?: 'device' | 'host';
  /** Also train the plain dense SGD baseline (default true). */
  plain?: boolean;
  /** Mine on a worker thread per miner (default false: on the training thread, beside the engine). */
  miningWorkers?: boolean;
}

export interface TrainingRunResult {
  def: TaskDefinition;
  taskId: Uint8Array;
  /** Held-out accuracy of each miner's final model, and of the plain SGD model. */
  accuracies: number[];
  plainAccuracy: number | undefined;
  pouwSeconds: number;
  plainSeconds: number | undefined;
  iterations: number;
  mapEntriesPerIteration: number;
  bytesPerItRes: number;
  denseGradientBytes: number;
  bus: BusStats;
  /** Mining, summed over the miners: nonces hashed, jobs (iterations), jobs dropped unmined. */
  mining: { tried: number; jobs: number; dropped: number; hits: number };
  /** In order of the lucky iteration (then miner), whatever order mining finished in. */
  candidates: BlockCandidate[];
  history: MemoryHistory;
  /** A verifier context over this run (its own engine on `backend`). */
  verifyContext(): Promise<VerifyContext>;
}

export async function runPouwTraining(o: TrainingRunOptions): Promise<TrainingRunResult> {
  const started = performance.now();
  const { def, split, chainId } = o;
  const tid = taskId(chainId, def);
  const chain = await createTestChain({
    params: { ...TEST_PARAMS, initialBits: targetToBits(1n << (o.log2Target ?? 242n)) },
  });
  const accounts = await Promise.all(
    Array.from({ length: o.miners ?? 3 }, (_, i) => testAccount(i, nodeCryptoEd25519)),
  );
  const history = new MemoryHistory(chainId);
  const candidates: BlockCandidate[] = [];
  const bus = new ItResBus(o.bus ?? { seed: 'mnist', minDelay: 0, maxDelay: 1, duplicateRate: 0.05 });
  let round = 0;
  const miners: Miner[] = [];
  const services: NodeMiningService[] = [];
  for (const a of accounts) {
    const mining =
      o.miningWorkers !== true
        ? undefined
        : nodeMiningService({
            chainId,
            taskId: tid,
            parameterCount: validateTask(def).parameterCount,
            secretKey: a.secretKey,
          });
    if (mining !== undefined) services.push(mining);
    const template = await buildBlockTemplate(chain.ledger, undefined, {
      payout: a.address,
      time: GENESIS_TIME + 1000n,
      taskId: tid,
    });
    let transport: ReturnType<ItResBus['join']> | undefined;
    const miner = await Miner.create({
      chainId,
      task: def,
      engine: await createTfjsEngine(def, { backend: o.backend }),
      dataset: split.train,
      identity: { secretKey: a.secretKey, publicKey: a.publicKey, ed: nodeCryptoEd25519 },
      miners: accounts.map((x) => x.publicKey),
      clock: () => GENESIS_TIME + 2000n + BigInt(round),
      template: () => template,
      transport: {
        broadcast(msg) {
          history.add(msg);
          transport!.broadcast(msg);
        },
      },
      onCandidate: (c) => candidates.push(c),
      digest: nodeDigest,
      flushInStep: o.flushInStep,
      residual: o.residual ?? 'device',
      ...(mining === undefined ? {} : { mining }),
    });
    transport = bus.join(`miner-${a.index}`, (msg) => miner.receive(msg));
    miners.push(miner);
  }

  // Round-robin, one iteration per miner per round, then one bus tick: deterministic.
  let mapEntries = 0;
  let iterations = 0;
  for (; ; round++) {
    let ran = 0;
    for (const m of miners) {
      const r = await m.iterate();
      if (r === undefined) continue;
      ran++;
      iterations++;
      mapEntries += r.mapEntries;
    }
    await bus.tick();
    if (ran === 0) break;
  }
  await Promise.all(miners.map((m) => m.drain()));
  await bus.flush();
  const pouwSeconds = (performance.now() - started) / 1000;

  const mining = { tried: 0, jobs: 0, dropped: 0, hits: 0 };
  for (const m of miners) {
    const st = (await m.stats()).mining;
    mining.tried += st.tried;
    mining.jobs += st.jobs;
    mining.dropped += st.dropped;
    mining.hits += st.hits;
  }
  const evalEngine = await createTfjsEngine(def, { backend: o.backend });
  const accuracies: number[] = [];
  for (const m of miners) accuracies.push((await evalEngine.evaluate(m.model(), split.heldOut)).accuracy);
  const parameterCount = evalEngine.parameterCount;
  evalEngine.dispose();
  for (const m of miners) m.close();
  for (const s of services) {
    s.close();
    await s.terminate();
  }

  let plainAcc: number | undefined;
  let plainSeconds: number | undefined;
  if (o.plain !== false) {
    const t0 = performance.now();
    const plain = await createPlainSgd(def, o.backend);
    for (let epoch = 0; epoch < def.epochs; epoch++) {
      for (let b = 0; b < batchesPerEpoch(def); b++) {
        await plainSgdStep(
          plain,
          batchTensors(split.train, batchIndices(tid, epoch, b, def.trainSize, def.batchSize)),
        );
      }
    }
    plainAcc = plainAccuracy(plain, split.heldOut);
    plainSeconds = (performance.now() - t0) / 1000;
    plain.dispose();
  }

  return {
    def,
    taskId: tid,
    accuracies,
    plainAccuracy: plainAcc,
    pouwSeconds,
    plainSeconds,
    iterations,
    mapEntriesPerIteration: mapEntries / iterations,
    bytesPerItRes: bus.stats.bytes / bus.stats.published,
    denseGradientBytes: 4 * parameterCount,
    bus: bus.stats,
    mining,
    candidates: candidates.sort(
      (a, b) =>
        a.lucky.body.iteration - b.lucky.body.iteration ||
        (bytesToHex(a.lucky.body.miner) < bytesToHex(b.lucky.body.miner) ? -1 : 1),
    ),
    history,
    async verifyContext() {
      return {
        chainId,
        task: def,
        taskId: tid,
        miners: accounts.map((a) => a.publicKey).sort((x, y) => (bytesToHex(x) < bytesToHex(y) ? -1 : 1)),
        data: new CommittedDataset(chainId, def, split.train, split.proof),
        history,
        engine: await createTfjsEngine(def, { backend: o.backend }),
        ed25519: nodeCryptoEd25519,
        now: () => performance.now(),
      };
    },
  };
}
