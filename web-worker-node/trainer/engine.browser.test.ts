import { after, assert, before, describe, it } from '#test';
import type { Batch } from '../../shared/pouw/engine.ts';
import { accumulateAndThreshold, applyMap, flushResidual, makeEntry } from '../../shared/pouw/residual.ts';
import {
  Activation,
  bitsToFloat32,
  float32Bits,
  LayerKind,
  Loss,
  mnistMlpTask,
  type TaskDefinition,
} from '../../shared/pouw/task.ts';
import { type MnistData, mnistBatch } from '../data/mnist.ts';
import { loadMnistBrowser } from '../data/mnist-browser.ts';
import { DivergenceMeter, formatDivergence } from './cross-backend.ts';
import type { BackendName, TfjsEngineOptions } from './engine-tfjs.ts';
import { spawnTrainerWorker, type TrainerWorker, type WorkerTrainingEngine } from './worker-client.ts';

const BACKENDS: BackendName[] = ['cpu', 'wasm', 'webgl', 'webgpu'];
const workers = new Map<BackendName, TrainerWorker>();
let mnist: MnistData;

function worker(b: BackendName): TrainerWorker {
  return workers.get(b)!;
}

function tinyTask(
  layers: TaskDefinition['layers'],
  inputShape: number[],
  loss: number = Loss.CROSS_ENTROPY,
): TaskDefinition {
  return mnistMlpTask({
    inputShape,
    numClasses: 3,
    layers,
    loss,
    batchSize: 4,
    trainSize: 4,
    initSeed: new Uint8Array(32).fill(9),
  });
}
const dense = (units: number, activation: number) => ({
  kind: LayerKind.DENSE,
  units,
  kernelSize: 0,
  stride: 0,
  padding: 0,
  activation,
});
const DENSE_TASK = tinyTask([dense(6, Activation.TANH), dense(3, Activation.SOFTMAX)], [5]);
const CONV_TASK = tinyTask(
  [
    { kind: LayerKind.CONV2D, units: 3, kernelSize: 3, stride: 1, padding: 0, activation: Activation.RELU },
    { kind: LayerKind.MAX_POOL2D, units: 0, kernelSize: 2, stride: 2, padding: 0, activation: 0 },
    { kind: LayerKind.FLATTEN, units: 0, kernelSize: 0, stride: 0, padding: 0, activation: 0 },
    dense(3, Activation.LINEAR),
  ],
  [6, 6, 2],
  Loss.MSE,
);

function randomBatch(size: number, count: number, classes: number, seed: number): Batch {
  let s = seed;
  const next = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
  return {
    x: Float32Array.from({ length: size * count }, () => next() * 2 - 1),
    labels: Uint8Array.from({ length: count }, () => Math.floor(next() * classes)),
  };
}

function maxAbsDiff(a: Float32Array, b: Float32Array): { abs: number; rel: number } {
  let abs = 0;
  let scale = 0;
  for (let j = 0; j < a.length; j++) {
    abs = Math.max(abs, Math.abs(a[j]! - b[j]!));
    scale = Math.max(scale, Math.abs(a[j]!));
  }
  return { abs, rel: abs / Math.max(scale, 1e-30) };
}

describe('TF.js training engine in a Web Worker (Chromium)', () => {
  before(async () => {
    mnist = await loadMnistBrowser('/public/data/mnist-10k.u8.gz');
    for (const b of BACKENDS) {
      const w = spawnTrainerWorker();
      workers.set(b, w);
      const choice = await w.selectBackend({ force: b });
      assert.equal(choice.backend, b);
      console.log(`[engine] forced ${b}: self-test gradient error ${choice.selfTestError.toExponential(2)}`);
    }
  });
  after(() => {
    for (const w of workers.values()) w.terminate();
  });

  it('the ladder in headless Chromium chooses wasm and reports why the GPUs were skipped', async () => {
    const w = spawnTrainerWorker();
    try {
      const gpu = await w.describeGpu();
      const choice = await w.selectBackend();
      console.log(
        `[engine] ladder: chose ${choice.backend}; skipped: ${choice.skipped.map((s) => `${s.backend}: ${s.reason}`).join(' | ')}; gpu: ${JSON.stringify(gpu)}`,
      );
      assert.equal(choice.backend, 'wasm');
      assert.ok(
        choice.skipped.some((s) => s.backend === 'webgpu'),
        'webgpu was considered and skipped',
      );
      assert.ok(
        choice.skipped.some((s) => s.backend === 'webgl'),
        'webgl was considered and skipped',
      );
    } finally {
      w.terminate();
    }
  });

  it('gradients of a small dense and a small conv model agree with cpu on every backend (tolerance measured)', async () => {
    for (const [name, def, size] of [
      ['dense', DENSE_TASK, 5],
      ['conv', CONV_TASK, 72],
    ] as const) {
      const engines = new Map<BackendName, WorkerTrainingEngine>();
      for (const b of BACKENDS) engines.set(b, await worker(b).createEngine(def));
      const m = engines.get('cpu')!.parameterCount;
      const n = Int32Array.from({ length: m }, (_, j) => ((j * 7) % 11) - 5);
      const batch = randomBatch(size, 4, 3, 17);
      const ref = await engines.get('cpu')!.gradient(n, batch);
      for (const b of BACKENDS.slice(1)) {
        const g = await engines.get(b)!.gradient(n, batch);
        const d = maxAbsDiff(ref.gradient, g.gradient);
        console.log(
          `[engine] ${name} model, ${b} vs cpu: max|Δg| ${d.abs.toExponential(2)} (relative to max|g| ${d.rel.toExponential(2)}), loss ${g.loss} vs ${ref.loss}`,
        );
        assert.ok(d.rel < 1e-4, `${b} ${name} gradient within 1e-4 of cpu`);
      }
      for (const e of engines.values()) e.dispose();
    }
  });

  it('step() on every backend is residual.ts applied to its own gradient(), and nothing leaks', async () => {
    // A narrow MLP on real digits keeps this quick on the emulated GPUs; the packing is the same.
    const def = mnistMlpTask({
      layers: [dense(32, Activation.RELU), dense(10, Activation.SOFTMAX)],
      tau: float32Bits(0.05),
    });
    const tau = bitsToFloat32(def.tau);
    for (const b of BACKENDS) {
      const w = worker(b);
      const before = await w.api.memory();
      const e = await w.createEngine(def);
      const n = new Int32Array(e.parameterCount);
      const r = new Float32Array(e.parameterCount);
      for (let i = 0; i < 4; i++) {
        const batch = mnistBatch(mnist, 100 * i, 100);
        const g = await e.gradient(n, batch);
        const want = accumulateAndThreshold(r, g.gradient, tau);
        applyMap(n, want);
        const got = await e.step(batch);
        assert.deepEqual(Array.from(got.map), Array.from(want), `${b} step ${i} map`);
      }
      // Peer maps of different lengths: a dense delta each, so no shader is compiled per length.
      const t0 = performance.now();
      for (const len of [3, 17, 250]) {
        const peer = Uint32Array.from({ length: len }, (_, k) =>
          makeEntry(k * 37 + len, k % 2 === 0 ? 1 : -1),
        );
        applyMap(n, peer);
        await e.applyMap(peer);
      }
      console.log(
        `[engine] ${b}: three peer maps of different lengths applied in ${(performance.now() - t0).toFixed(0)} ms`,
      );
      const flushWant = flushResidual(r, tau);
      applyMap(n, flushWant);
      assert.deepEqual(Array.from(await e.flush()), Array.from(flushWant), `${b} flush`);
      const s = await e.state();
      assert.deepEqual(Array.from(s.n), Array.from(n), `${b} n`);
      // Non-finite residual entries: NaN never enters the map or n, ±Inf does (as residual.ts).
      const rBad = Float32Array.from({ length: e.parameterCount }, (_, j) =>
        j % 5 === 0
          ? Number.NaN
          : j % 13 === 0
            ? Number.POSITIVE_INFINITY
            : j % 17 === 0
              ? Number.NEGATIVE_INFINITY
              : 0,
      );
      await e.setState(n, rBad);
      const batch = mnistBatch(mnist, 900, 100);
      const g = await e.gradient(n, batch);
      const badWant = accumulateAndThreshold(rBad, g.gradient, tau);
      applyMap(n, badWant);
      assert.deepEqual(
        Array.from((await e.step(batch)).map),
        Array.from(badWant),
        `${b}: map with non-finite residuals`,
      );
      assert.deepEqual(Array.from((await e.state()).n), Array.from(n), `${b}: n with non-finite residuals`);
      e.dispose();
      const afterDispose = await w.api.memory();
      assert.equal(afterDispose.numTensors, before.numTensors, `${b}: tensors after dispose`);
    }
  });

  it('a cpu and a wasm engine sharing one worker, called concurrently, agree as in separate workers', async () => {
    const w = spawnTrainerWorker();
    try {
      await w.selectBackend({ force: 'cpu' });
      await w.selectBackend({ force: 'wasm' });
      const def = mnistMlpTask({ tau: float32Bits(1) });
      const cpu = await w.createEngine(def, { backend: 'cpu' });
      const wasm = await w.createEngine(def, { backend: 'wasm' });
      const n = new Int32Array(cpu.parameterCount);
      let worst = 0;
      for (let i = 0; i < 4; i++) {
        const batch = mnistBatch(mnist, 100 * i, 100);
        const [a, b] = await Promise.all([cpu.gradient(n, batch), wasm.gradient(n, batch)]);
        for (let j = 0; j < a.gradient.length; j++)
          worst = Math.max(worst, Math.abs(a.gradient[j]! - b.gradient[j]!));
        await Promise.all([cpu.step(batch), wasm.step(batch), cpu.evaluate(n, batch), wasm.state()]);
      }
      console.log(`[engine] cpu and wasm in one worker: max|Δg| ${worst.toExponential(2)}`);
      assert.ok(worst < 1e-4);
    } finally {
      w.terminate();
    }
  });

  // The divergence run is cut into chunks (mocha's 120 s per test); ADR 0008's numbers come from
  // DIVERGENCE_TAUS = [0.01, 1], DIVERGENCE_CHUNKS = 10, CHUNK_ITERATIONS = 15 (150 iterations).
  const DIVERGENCE_TAUS = [0.01];
  const DIVERGENCE_CHUNKS = 1;
  const CHUNK_ITERATIONS = 12;
  for (const tau of DIVERGENCE_TAUS) {
    const def = mnistMlpTask({ tau: float32Bits(tau) });
    const engines = new Map<BackendName, WorkerTrainingEngine>();
    let meter: DivergenceMeter;
    let started = 0;
    let done = 0;
    for (let chunk = 0; chunk < DIVERGENCE_CHUNKS; chunk++) {
      it(`MNIST MLP, B=100, τ=${tau}: wasm, webgl and webgpu residuals against cpu along one trajectory (iterations ${chunk * CHUNK_ITERATIONS + 1}–${(chunk + 1) * CHUNK_ITERATIONS})`, async () => {
        if (chunk === 0) {
          for (const b of BACKENDS) engines.set(b, await worker(b).createEngine(def));
          meter = new DivergenceMeter(
            engines.get('cpu')!.parameterCount,
            bitsToFloat32(def.tau),
            def.segmentLength,
            BACKENDS.slice(1),
          );
          started = performance.now();
        }
        for (let k = 0; k < CHUNK_ITERATIONS; k++, done++) {
          const batch = mnistBatch(mnist, (100 * done) % 8000, 100);
          const n = meter.n.slice();
          // The four workers compute in parallel.
          const grads = await Promise.all(BACKENDS.map((b) => engines.get(b)!.gradient(n, batch)));
          meter.step(
            grads[0]!.gradient,
            Object.fromEntries(BACKENDS.slice(1).map((b, i) => [b, grads[i + 1]!.gradient])),
          );
        }
        const report = meter.report();
        for (const b of report.backends)
          assert.ok(b.maxResidualDiff < 1e-3, `${b.backend} residual within 1e-3 of cpu`);
        if (chunk === DIVERGENCE_CHUNKS - 1) {
          console.log(
            `[engine] ${formatDivergence(`MNIST MLP in Chromium workers, η=0.1, τ=${tau}, cpu reference`, report)}\n  (${((performance.now() - started) / done).toFixed(0)} ms per iteration, the four backends in parallel)`,
          );
          for (const e of engines.values()) e.dispose();
        }
      });
    }
  }

  it('ms per step on each backend: PoUW step (default and alternative map downloads / state layouts) vs plain TF.js SGD step', async () => {
    const def = mnistMlpTask({ tau: float32Bits(1) });
    const variants: Record<BackendName, TfjsEngineOptions[]> = {
      cpu: [{}, { stateLayout: 'blocks' }],
      wasm: [{}, { threshold: 'js' }, { stateLayout: 'blocks' }, { stateLayout: 'flat' }],
      // SwiftShader tells nothing about real GPUs' speed (ENVIRONMENT.md): kept short.
      webgl: [{}, { stateLayout: 'host' }],
      webgpu: [{}, { stateLayout: 'host' }],
    };
    const lines: string[] = [];
    for (const b of BACKENDS) {
      const w = worker(b);
      const plain = await w.createPlainSgd(def, b);
      const engines = await Promise.all(variants[b].map((o) => w.createEngine(def, o)));
      const runners: [string, (batch: Batch) => Promise<unknown>][] = [
        ['plain TF.js', (batch) => plain.step(batch)],
        ...engines.map((e, i): [string, (batch: Batch) => Promise<unknown>] => [
          i === 0 ? 'PoUW (default)' : `PoUW ${JSON.stringify(variants[b][i])}`,
          (batch) => e.step(batch),
        ]),
      ];
      // Interleaved rounds (the machine is shared): minimum and median of each.
      const rounds = b === 'cpu' || b === 'wasm' ? 8 : 3;
      const samples = runners.map(() => [] as number[]);
      for (const [, run] of runners) await run(mnistBatch(mnist, 0, 100));
      for (let i = 0; i < rounds; i++) {
        const batch = mnistBatch(mnist, 100 * i, 100);
        for (const [k, [, run]] of runners.entries()) {
          const t = performance.now();
          await run(batch);
          samples[k]!.push(performance.now() - t);
        }
      }
      const stat = (xs: number[]) => {
        const sorted = xs.slice().sort((x, y) => x - y);
        return `${sorted[0]!.toFixed(1)} / ${sorted[Math.floor(sorted.length / 2)]!.toFixed(1)} ms`;
      };
      lines.push(`${b}: ${runners.map(([name], k) => `${name} ${stat(samples[k]!)}`).join('; ')}`);
      for (const e of engines) e.dispose();
      await plain.dispose();
    }
    console.log(
      `[engine] MNIST MLP B=100 in a Chromium worker, min / median (2-core VM, GPUs emulated by SwiftShader):\n  ${lines.join('\n  ')}`,
    );
  });
});
