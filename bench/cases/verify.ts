/**
 * Verification cost (DESIGN §4.5, ADR 0009): one block's replay (`verifyCandidate`) ÷ one training
 * step, on the same backend, model and batches, measured in one run with the two interleaved round
 * by round. The training step is the miner's (`TrainingEngine.step`: gradient, residual and map on
 * the device) and, beside it, a plain TF.js SGD step. A lucky iteration sits anywhere in its residual
 * segment, so a replay takes 1 … R gradient steps; the table gives the ratio per position and its
 * mean (R + 1)/2 steps, the expected cost of one block.
 *
 * `measureVerifyCost` is what a benchmark script calls; `measureResidualDrift` measures the
 * cross-backend residual differences the tolerance band is chosen from. Run this file directly
 * (`node --import tsx bench/cases/verify.ts [--backends cpu,wasm] [--rounds N] [--drift-iterations N]`)
 * for the tables and bench/results/verify-latest.json.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { nodeCryptoEd25519 } from '../../node-common/ed25519-node.ts';
import type { Ed25519 } from '../../shared/crypto/ed25519.ts';
import type { Dataset } from '../../shared/pouw/dataset.ts';
import type { GradientEngine } from '../../shared/pouw/engine.ts';
import type { Digest } from '../../shared/pouw/mining.ts';
import { applyMap, isFlushIteration, residualStep } from '../../shared/pouw/residual.ts';
import {
  bitsToFloat32,
  float32Bits,
  mnistMlpTask,
  type TaskDefinition,
  taskId as taskIdOf,
} from '../../shared/pouw/task.ts';
import { CommittedDataset, type DatasetCommitmentProof, verifyCandidate } from '../../shared/pouw/verify.ts';
import {
  batchOf,
  candidateAt,
  datasetFromImages,
  runHonestMiners,
  splitCommitted,
} from '../../shared/pouw/verify-fixtures.ts';
import { loadMnistNode } from '../../web-worker-node/data/mnist-node.ts';
import { selectBackend } from '../../web-worker-node/trainer/backends-node.ts';
import { createPlainSgd, createTfjsEngine, plainSgdStep } from '../../web-worker-node/trainer/engine-tfjs.ts';
import { describeMachine, machineInfo } from '../machine.ts';

const CHAIN = 'pouw-bench';

/** node:crypto SHA-256 (SHA-NI where the CPU has it). */
export const nodeSha256: Digest = (parts) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
};

export interface VerifyCostOptions {
  backend: string;
  task: TaskDefinition;
  train: Dataset;
  proof: DatasetCommitmentProof;
  ed: Ed25519;
  /** SHA-256 for the hashes over n (default: noble). */
  digest?: Digest;
  /** Measurement rounds; each verifies every position of a segment once and times as many steps. */
  rounds?: number;
  now: () => number;
}

export interface VerifyCostRow {
  /** Gradient steps the replay takes (position of the lucky iteration in its segment + 1). */
  steps: number;
  verifyMs: number;
  gradientMs: number;
  /** verifyMs ÷ one miner step, and ÷ one plain SGD step. */
  ratio: number;
  ratioPlain: number;
}

export interface VerifyCostResult {
  backend: string;
  model: string;
  batchSize: number;
  parameterCount: number;
  segmentLength: number;
  /** One miner step (TrainingEngine.step) and one plain TF.js SGD step, ms (medians). */
  stepMs: number;
  plainStepMs: number;
  rows: VerifyCostRow[];
  /** Expected cost of one block: the mean over positions in the segment. */
  meanRatio: number;
  meanRatioPlain: number;
  /** Share of the replay spent in gradients (the rest: history walk, model hashes, signatures, map checks). */
  gradientShare: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

export async function measureVerifyCost(o: VerifyCostOptions): Promise<VerifyCostResult> {
  const { task, backend } = o;
  const R = task.segmentLength;
  const rounds = o.rounds ?? 3;
  // Work to verify: one miner for two segments (the target is easy: almost every iteration is lucky).
  const miner = await createTfjsEngine(task, { backend });
  const run = await runHonestMiners({
    chainId: CHAIN,
    task,
    train: o.train,
    iterations: 2 * R,
    ed25519: o.ed,
    miners: [{ engine: { kind: 'gradient', engine: miner }, secretKey: new Uint8Array(32).fill(7) }],
  });
  miner.dispose();
  const verifier = await createTfjsEngine(task, { backend });
  const stepper = await createTfjsEngine(task, { backend });
  const plain = await createPlainSgd(task, backend);
  const ctx = {
    chainId: CHAIN,
    task,
    taskId: run.taskId,
    miners: run.miners,
    data: new CommittedDataset(CHAIN, task, o.train, o.proof),
    history: run.history,
    engine: verifier,
    ed25519: o.ed,
    ...(o.digest === undefined ? {} : { digest: o.digest }),
    now: o.now,
  };
  const candidates = [];
  for (let L = R; L < 2 * R; L++) candidates.push(await candidateAt(run, 0, L));
  const batches = Array.from({ length: R }, (_, t) => batchOf(task, run.taskId, o.train, 0, 1, R + t).batch);
  // Warm-up: kernels, caches, the segment hashes of the committed data.
  await verifyCandidate(candidates[0]!, ctx);
  await stepper.setState(run.steps[0]![R]!.nBefore);
  await stepper.step(batches[0]!);
  await plainSgdStep(plain, batches[0]!);

  const verifyMs: number[][] = candidates.map(() => []);
  const gradientMs: number[][] = candidates.map(() => []);
  const stepMs: number[] = [];
  const plainMs: number[] = [];
  for (let round = 0; round < rounds; round++) {
    for (const [i, c] of candidates.entries()) {
      const rep = await verifyCandidate(c, ctx);
      verifyMs[i]!.push(rep.elapsedMs!);
      gradientMs[i]!.push(rep.gradientMs!);
    }
    await stepper.setState(run.steps[0]![R]!.nBefore);
    for (const b of batches) {
      let t0 = o.now();
      await stepper.step(b);
      stepMs.push(o.now() - t0);
      t0 = o.now();
      await plainSgdStep(plain, b);
      plainMs.push(o.now() - t0);
    }
  }
  verifier.dispose();
  stepper.dispose();
  plain.dispose();
  const step = median(stepMs);
  const plainStep = median(plainMs);
  const rows = candidates.map((_, i) => {
    const v = median(verifyMs[i]!);
    return {
      steps: i + 1,
      verifyMs: v,
      gradientMs: median(gradientMs[i]!),
      ratio: v / step,
      ratioPlain: v / plainStep,
    };
  });
  const mean = (f: (r: VerifyCostRow) => number) => rows.reduce((s, r) => s + f(r), 0) / rows.length;
  return {
    backend,
    model: `MLP ${[...task.inputShape, ...task.layers.map((l) => l.units)].join('-')}`,
    batchSize: task.batchSize,
    parameterCount: verifier.parameterCount,
    segmentLength: R,
    stepMs: step,
    plainStepMs: plainStep,
    rows,
    meanRatio: mean((r) => r.ratio),
    meanRatioPlain: mean((r) => r.ratioPlain),
    gradientShare: mean((r) => r.gradientMs) / mean((r) => r.verifyMs),
  };
}

export function formatVerifyCost(r: VerifyCostResult): string {
  const lines = [
    `${r.backend}: ${r.model}, B=${r.batchSize}, R=${r.segmentLength}; miner step ${r.stepMs.toFixed(1)} ms, plain SGD step ${r.plainStepMs.toFixed(1)} ms`,
    '  steps replayed  verify ms  gradient ms  ÷ miner step  ÷ plain step',
    ...r.rows.map(
      (x) =>
        `  ${String(x.steps).padStart(14)}  ${x.verifyMs.toFixed(1).padStart(9)}  ${x.gradientMs.toFixed(1).padStart(11)}  ${x.ratio.toFixed(2).padStart(12)}  ${x.ratioPlain.toFixed(2).padStart(12)}`,
    ),
    `  mean over the segment (one block): ${r.meanRatio.toFixed(2)} miner steps, ${r.meanRatioPlain.toFixed(2)} plain steps; gradients ${(100 * r.gradientShare).toFixed(0)}% of the replay`,
  ];
  return lines.join('\n');
}

export interface DriftResult {
  backends: [string, string];
  tau: number;
  iterations: number;
  meanMapEntries: number;
  /** Largest |Δv| over all weights, and over those within 0.1·τ of the threshold (the only ones whose decision can change). */
  maxDiff: number;
  maxDiffNear: number;
  meanDiffNear: number;
  p999DiffNear: number;
  /** Decisions (±1 / none) that differ between the two backends. */
  flips: number;
  /** Entries within ε of the threshold per iteration, for ε = τ·10^-k. */
  inBandPerIteration: Record<string, number>;
}

/**
 * Cross-backend residual differences (ADR 0009): one honest trajectory (residual.ts on `b`'s
 * gradients), and at every iteration v = r + g on both engines, compared weight by weight.
 */
export async function measureResidualDrift(
  a: GradientEngine,
  b: GradientEngine,
  task: TaskDefinition,
  train: Dataset,
  iterations: number,
): Promise<DriftResult> {
  const tid = taskIdOf(CHAIN, task);
  const tau = bitsToFloat32(task.tau);
  const eps = [1e-4, 1e-3, 1e-2].map((f) => f * tau);
  const inBand = eps.map(() => 0);
  const near: number[] = [];
  let flips = 0;
  let maxDiff = 0;
  let mapEntries = 0;
  const n = new Int32Array(a.parameterCount);
  const r = new Float32Array(a.parameterCount);
  for (let t = 0; t < iterations; t++) {
    const { batch } = batchOf(task, tid, train, 0, 1, t);
    const ga = await a.gradient(n, batch);
    const gb = await b.gradient(n, batch);
    const th = isFlushIteration(t, task.segmentLength) ? tau / 2 : tau;
    for (let j = 0; j < r.length; j++) {
      const va = Math.fround(r[j]! + ga.gradient[j]!);
      const vb = Math.fround(r[j]! + gb.gradient[j]!);
      const d = Math.abs(va - vb);
      if (d > maxDiff) maxDiff = d;
      const m = Math.abs(Math.abs(vb) - th);
      if (m < 0.1 * tau) near.push(d);
      for (let i = 0; i < eps.length; i++) if (m <= eps[i]!) inBand[i]!++;
      if ((va > th ? 1 : va < -th ? -1 : 0) !== (vb > th ? 1 : vb < -th ? -1 : 0)) flips++;
    }
    const map = residualStep(r, gb.gradient, tau, isFlushIteration(t, task.segmentLength));
    applyMap(n, map);
    mapEntries += map.length;
  }
  near.sort((x, y) => x - y);
  return {
    backends: [a.backend, b.backend],
    tau,
    iterations,
    meanMapEntries: mapEntries / iterations,
    maxDiff,
    maxDiffNear: near[near.length - 1] ?? 0,
    meanDiffNear: near.reduce((x, y) => x + y, 0) / Math.max(1, near.length),
    p999DiffNear: near[Math.floor(0.999 * (near.length - 1))] ?? 0,
    flips,
    inBandPerIteration: Object.fromEntries(eps.map((e, i) => [`${e / tau}·τ`, inBand[i]! / iterations])),
  };
}

/** The benchmarked task: the tuned MNIST MLP (η = 0.3, τ = 1, B = 100, R = 10, k = 5). */
export function verifyBenchTask(overrides: Partial<TaskDefinition> = {}): TaskDefinition {
  return mnistMlpTask({
    learningRate: float32Bits(0.3),
    tau: float32Bits(1),
    segmentLength: 10,
    znbLead: 5,
    ...overrides,
  });
}

if (import.meta.main) {
  const args = process.argv.slice(2);
  const opt = (name: string) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const backends = (opt('backends') ?? 'wasm,cpu').split(',').filter(Boolean);
  const rounds = Number(opt('rounds') ?? 3);
  const machine = machineInfo();
  console.log(`machine: ${describeMachine(machine)}`);
  const split = splitCommitted(
    CHAIN,
    datasetFromImages(loadMnistNode()),
    10,
    0.2,
    new Uint8Array(32).fill(3),
  );
  const task = verifyBenchTask({ datasetCommitment: split.commitment, trainSize: split.train.count });
  await selectBackend({ force: 'wasm' });
  const results: VerifyCostResult[] = [];
  for (const backend of backends) {
    const r = await measureVerifyCost({
      backend,
      task,
      train: split.train,
      proof: split.proof,
      ed: nodeCryptoEd25519,
      digest: nodeSha256,
      rounds,
      now: () => performance.now(),
    });
    console.log(`\n${formatVerifyCost(r)}`);
    results.push(r);
  }
  // Cross-backend residual drift, Node cpu vs wasm, at the default τ = 0.01 and the tuned τ = 1.
  const driftIterations = Number(opt('drift-iterations') ?? 40);
  const drift: DriftResult[] = [];
  for (const tau of driftIterations > 0 ? [0.01, 1] : []) {
    const lr = float32Bits(tau === 1 ? 0.3 : 0.1);
    const t = verifyBenchTask({
      datasetCommitment: split.commitment,
      trainSize: split.train.count,
      tau: float32Bits(tau),
      learningRate: lr,
    });
    const cpu = await createTfjsEngine(t, { backend: 'cpu' });
    const wasm = await createTfjsEngine(t, { backend: 'wasm' });
    const d = await measureResidualDrift(cpu, wasm, t, split.train, driftIterations);
    cpu.dispose();
    wasm.dispose();
    console.log(`\nresidual drift cpu vs wasm, τ = ${tau}: ${JSON.stringify(d)}`);
    drift.push(d);
  }
  const dir = join(import.meta.dirname, '..', 'results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'verify-latest.json'),
    `${JSON.stringify({ kind: 'verify', date: new Date().toISOString(), machine, results, drift }, null, 2)}\n`,
  );
  console.log('\nwrote bench/results/verify-latest.json');
  process.exit(0);
}
