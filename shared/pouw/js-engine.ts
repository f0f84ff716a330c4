/**
 * A pure-JS TrainingEngine for the smallest tasks (one dense softmax layer, cross-entropy:
 * `denseSoftmaxTask`), with residual.ts semantics exactly. Deterministic float64 accumulation, so a
 * miner and a verifier using it agree bit for bit in Node and in Chromium: the portable tests of
 * the miner, the verifier and the message history train and replay with it, no TF.js needed.
 */
import { WorkError } from '../errors.ts';
import type { Dataset } from './dataset.ts';
import type { Batch, GradientResult, LocalStepResult, TrainingEngine } from './engine.ts';
import { initialWeights, SeededStream } from './init.ts';
import { applyMap, flushResidual, residualStep, weightsOf } from './residual.ts';
import { bitsToFloat32, modelLayout, type TaskDefinition, weightUnit } from './task.ts';

export class JsSoftmaxEngine implements TrainingEngine {
  readonly backend = 'js';
  readonly parameterCount: number;
  private readonly w0: Float32Array;
  private readonly u: number;
  private readonly tau: number;
  private n: Int32Array;
  private r: Float32Array;

  constructor(private readonly def: TaskDefinition) {
    if (def.layers.length !== 1 || def.inputShape.length !== 1)
      throw new WorkError('TASK_INVALID', 'JsSoftmaxEngine: one dense softmax layer on flat inputs only');
    const layout = modelLayout(def);
    this.parameterCount = layout.parameterCount;
    this.w0 = initialWeights(layout, def.initSeed);
    this.u = weightUnit(def);
    this.tau = bitsToFloat32(def.tau);
    this.n = new Int32Array(this.parameterCount);
    this.r = new Float32Array(this.parameterCount);
  }

  async gradient(n: Int32Array, batch: Batch): Promise<GradientResult> {
    const inputs = this.def.inputShape[0]!;
    const classes = this.def.numClasses;
    const w = weightsOf(this.w0, n, this.u);
    const g = new Float64Array(this.parameterCount);
    let loss = 0;
    let correct = 0;
    const b = batch.labels.length;
    for (let e = 0; e < b; e++) {
      const x = batch.x.subarray(e * inputs, (e + 1) * inputs);
      const z = Array.from(
        { length: classes },
        (_, k) => w[inputs * classes + k]! + x.reduce((s, v, i) => s + v * w[i * classes + k]!, 0),
      );
      const max = Math.max(...z);
      const ex = z.map((v) => Math.exp(v - max));
      const sum = ex.reduce((a, c) => a + c, 0);
      const label = batch.labels[e]!;
      loss += -Math.log(ex[label]! / sum);
      if (z.indexOf(max) === label) correct++;
      for (let k = 0; k < classes; k++) {
        const d = ex[k]! / sum - (k === label ? 1 : 0);
        for (let i = 0; i < inputs; i++) g[i * classes + k]! += x[i]! * d;
        g[inputs * classes + k]! += d;
      }
    }
    return { gradient: Float32Array.from(g), loss: loss / b, accuracy: correct / b };
  }

  async evaluate(n: Int32Array, batch: Batch): Promise<{ loss: number; accuracy: number }> {
    const { loss, accuracy } = await this.gradient(n, batch);
    return { loss, accuracy };
  }

  async setState(n: Int32Array, r?: Float32Array): Promise<void> {
    this.n = n.slice();
    this.r = r?.slice() ?? new Float32Array(this.parameterCount);
  }

  async applyMap(map: Uint32Array): Promise<void> {
    applyMap(this.n, map);
  }

  async step(batch: Batch, flush = false): Promise<LocalStepResult> {
    const g = await this.gradient(this.n, batch);
    const map = residualStep(this.r, g.gradient, this.tau, flush);
    applyMap(this.n, map);
    return { map, loss: g.loss, accuracy: g.accuracy };
  }

  async flush(): Promise<Uint32Array> {
    const map = flushResidual(this.r, this.tau);
    applyMap(this.n, map);
    return map;
  }

  async state(): Promise<{ n: Int32Array; r: Float32Array }> {
    return { n: this.n.slice(), r: this.r.slice() };
  }

  dispose(): void {}
}

/**
 * The dataset the small portable tests train `JsSoftmaxEngine` on: `count` examples of 4 seeded
 * feature bytes whose label is the argmax of three fixed linear scores (so a softmax layer can learn it).
 */
export function tinySeparableDataset(count = 48): Dataset {
  const s = new SeededStream(new Uint8Array(32).fill(3));
  const examples = new Uint8Array(count * 5);
  for (let i = 0; i < count; i++) {
    const f = [0, 1, 2, 3].map(() => s.nextUint32() & 0xff);
    const scores = [f[0]! - f[1]!, f[1]! - f[2]! + 20, f[2]! + f[3]! - 200];
    examples.set([...f, scores.indexOf(Math.max(...scores))], i * 5);
  }
  return { examples, count, featureBytes: 4 };
}
