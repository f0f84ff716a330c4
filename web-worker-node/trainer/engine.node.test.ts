import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import * as tf from '@tensorflow/tfjs-core';
import { assert, describe, it } from '#test';
import { packMnist } from '../../scripts/pack-mnist.ts';
import type { Batch } from '../../shared/pouw/engine.ts';
import {
  accumulateAndThreshold,
  applyMap,
  flushResidual,
  makeEntry,
  residualStep,
} from '../../shared/pouw/residual.ts';
import {
  Activation,
  bitsToFloat32,
  float32Bits,
  LayerKind,
  Loss,
  mnistMlpTask,
  Padding,
  type TaskDefinition,
  weightUnit,
} from '../../shared/pouw/task.ts';
import { MNIST_TRAIN_SIZE, mnistBatch, mnistHeldOut, parseMnist } from '../data/mnist.ts';
import { loadMnistNode, MNIST_FILE } from '../data/mnist-node.ts';
import { selectBackend } from './backends-node.ts';
import { DivergenceMeter, formatDivergence } from './cross-backend.ts';
import {
  createPlainSgd,
  createTfjsEngine,
  EXPLICIT_TRANSPOSE_BACKENDS,
  type MapDownload,
  maxPool2d,
  PORTABLE_MAX_POOL_BACKENDS,
  plainSgdStep,
  type StateLayout,
  type TfjsTrainingEngine,
} from './engine-tfjs.ts';

const mnist = loadMnistNode();
const BACKENDS = ['cpu', 'wasm'] as const;

const dense = (units: number, activation: number) => ({
  kind: LayerKind.DENSE,
  units,
  kernelSize: 0,
  stride: 0,
  padding: 0,
  activation,
});
const conv = (units: number, k: number, stride: number, padding: number, activation: number) => ({
  kind: LayerKind.CONV2D,
  units,
  kernelSize: k,
  stride,
  padding,
  activation,
});
const pool = (k: number, stride: number) => ({
  kind: LayerKind.MAX_POOL2D,
  units: 0,
  kernelSize: k,
  stride,
  padding: 0,
  activation: 0,
});
const FLATTEN = { kind: LayerKind.FLATTEN, units: 0, kernelSize: 0, stride: 0, padding: 0, activation: 0 };

/** Tiny tasks with u = η·τ/B = 1e-3, so a finite difference of ±2 lattice steps is h = 2e-3. */
function tinyTask(
  inputShape: number[],
  layers: TaskDefinition['layers'],
  loss: number = Loss.CROSS_ENTROPY,
): TaskDefinition {
  return mnistMlpTask({
    inputShape,
    numClasses: 3,
    layers,
    loss,
    learningRate: float32Bits(1),
    tau: float32Bits(0.004),
    batchSize: 4,
    trainSize: 4,
    initSeed: new Uint8Array(32).fill(5),
  });
}
// (ReLU kinks would make finite differences flaky; ReLU is covered by the MNIST runs and cross-backend checks.)
const DENSE_TASK = tinyTask(
  [5],
  [dense(6, Activation.TANH), dense(4, Activation.LINEAR), dense(3, Activation.SOFTMAX)],
);
const DENSE_MSE_TASK = tinyTask([5], [dense(6, Activation.TANH), dense(3, Activation.SOFTMAX)], Loss.MSE);
const CONV_TASK = tinyTask(
  [7, 7, 2],
  [
    conv(3, 3, 1, Padding.VALID, Activation.TANH),
    pool(2, 2),
    conv(2, 2, 2, Padding.SAME, Activation.TANH),
    FLATTEN,
    dense(3, Activation.SOFTMAX),
  ],
);
const CONV_MSE_TASK = tinyTask(
  [6, 6, 1],
  [conv(2, 3, 2, Padding.SAME, Activation.LINEAR), FLATTEN, dense(3, Activation.TANH)],
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

function inputSize(def: TaskDefinition): number {
  return def.inputShape.reduce((a, b) => a * b, 1);
}

/** Central differences of the batch-summed loss at a sample of weights (w = w0 − u·n: n up = w down). */
async function checkFiniteDifferences(
  engine: TfjsTrainingEngine,
  def: TaskDefinition,
  label: string,
): Promise<void> {
  const m = engine.parameterCount;
  const batch = randomBatch(inputSize(def), def.batchSize, def.numClasses, 99);
  const n = Int32Array.from({ length: m }, (_, j) => ((j * 5) % 9) - 4);
  const { gradient } = await engine.gradient(n, batch);
  const u = weightUnit(def);
  const step = 2;
  const h = u * step;
  const sample = Array.from({ length: m }, (_, j) => j);
  let worst = 0;
  for (const j of sample) {
    const up = n.slice();
    up[j]! -= step;
    const down = n.slice();
    down[j]! += step;
    const [lu, ld] = [await engine.evaluate(up, batch), await engine.evaluate(down, batch)];
    const fd = ((lu.loss - ld.loss) * def.batchSize) / (2 * h);
    const err = Math.abs(fd - gradient[j]!) / (2e-3 + 2e-2 * Math.abs(gradient[j]!));
    worst = Math.max(worst, err);
    assert.ok(err <= 1, `${label} weight ${j}: finite difference ${fd}, gradient ${gradient[j]}`);
  }
  console.log(
    `[engine] ${label}: ${sample.length} weights within finite differences (worst at ${worst.toFixed(2)} of the tolerance)`,
  );
}

describe('packed MNIST digits', () => {
  it('the committed file is what scripts/pack-mnist.ts writes, and parses to 10,000 labelled digits', async () => {
    const raw = packMnist();
    const file = new Uint8Array(gunzipSync(readFileSync(MNIST_FILE)));
    assert.ok(Buffer.from(raw).equals(Buffer.from(file)), 'public/data/mnist-10k.u8.gz is reproducible');
    assert.equal(mnist.count, 10000);
    assert.equal(mnist.x.length, 10000 * 784);
    assert.ok(mnist.x.every((v) => v >= 0 && v <= 1));
    // Shuffled: both the training part and the held-out part hold every class.
    for (const [from, to] of [
      [0, MNIST_TRAIN_SIZE],
      [MNIST_TRAIN_SIZE, 10000],
    ] as const) {
      const counts = new Array<number>(10).fill(0);
      for (let i = from; i < to; i++) counts[mnist.labels[i]!]!++;
      assert.ok(
        counts.every((c) => c > (to - from) / 15),
        `classes in ${from}..${to}: ${counts}`,
      );
    }
    assert.throws(() => parseMnist(Uint8Array.from([0x50, 0x4d, 0x4e, 0x32, ...new Array(12).fill(0)])), {
      code: 'DECODE_MALFORMED',
    });
    assert.throws(() => parseMnist(file.subarray(0, file.length - 1)), { code: 'DECODE_UNDERSIZED' });
    assert.throws(() => parseMnist(new Uint8Array(4)), { code: 'DECODE_UNDERSIZED' });
  });
});

describe('TF.js training engine under Node (cpu, wasm)', () => {
  it('the backend ladder picks wasm in Node and says so; cpu can be forced, GPU backends cannot', async () => {
    const choice = await selectBackend();
    console.log(`[engine] Node ladder: ${JSON.stringify(choice)}`);
    assert.equal(choice.backend, 'wasm');
    assert.deepEqual(choice.skipped, []);
    assert.ok(choice.selfTestError < 1e-5);
    assert.equal((await selectBackend({ force: 'cpu' })).backend, 'cpu');
    await assert.rejects(() => selectBackend({ force: 'webgl' }), { code: 'BACKEND_UNAVAILABLE' });
    await assert.rejects(() => selectBackend({ force: 'webgpu' }), { code: 'BACKEND_UNAVAILABLE' });
  });

  it('gradients of tiny dense models (cross-entropy, MSE) match finite differences on cpu and wasm', async () => {
    await selectBackend();
    for (const backend of BACKENDS) {
      for (const [name, def] of [
        ['dense', DENSE_TASK],
        ['dense-mse', DENSE_MSE_TASK],
      ] as const) {
        const e = await createTfjsEngine(def, { backend });
        await checkFiniteDifferences(e, def, `${name} on ${backend}`);
        e.dispose();
      }
    }
  });

  it('gradients of tiny conv models (valid/same, stride 1/2, max-pool) match finite differences on cpu and wasm, and agree', async () => {
    await selectBackend();
    for (const [name, def] of [
      ['conv', CONV_TASK],
      ['conv-mse', CONV_MSE_TASK],
    ] as const) {
      const grads: Float32Array[] = [];
      for (const backend of BACKENDS) {
        const e = await createTfjsEngine(def, { backend });
        await checkFiniteDifferences(e, def, `${name} on ${backend}`);
        const n = Int32Array.from({ length: e.parameterCount }, (_, j) => (j % 7) - 3);
        grads.push((await e.gradient(n, randomBatch(inputSize(def), 4, 3, 5))).gradient);
        e.dispose();
      }
      let diff = 0;
      for (let j = 0; j < grads[0]!.length; j++)
        diff = Math.max(diff, Math.abs(grads[0]![j]! - grads[1]![j]!));
      console.log(`[engine] ${name}: max |g_cpu − g_wasm| = ${diff.toExponential(2)}`);
      assert.ok(diff < 1e-5);
    }
  });

  it("max-pool's gradient: wasm's MaxPoolGrad kernel is replaced by an op-built one equal to cpu's, ties and overlaps included", async () => {
    await selectBackend();
    const grad = async (
      backend: string,
      portable: boolean,
      x: Float32Array,
      shape: [number, number, number, number],
      k: number,
      s: number,
      pad: 'valid' | 'same',
    ) => {
      await tf.setBackend(backend);
      const had = PORTABLE_MAX_POOL_BACKENDS.has(backend);
      if (portable) PORTABLE_MAX_POOL_BACKENDS.add(backend);
      else PORTABLE_MAX_POOL_BACKENDS.delete(backend);
      try {
        const out = tf.tidy(() => {
          const f = (t: tf.Tensor) => {
            const p = maxPool2d(t as tf.Tensor4D, k, s, pad);
            return tf.sum(tf.mul(p, tf.reshape(tf.range(1, p.size + 1), p.shape)));
          };
          return tf.grad(f)(tf.tensor4d(x, shape));
        });
        const data = (await out.data()) as Float32Array;
        out.dispose();
        return data;
      } finally {
        if (had) PORTABLE_MAX_POOL_BACKENDS.add(backend);
        else PORTABLE_MAX_POOL_BACKENDS.delete(backend);
      }
    };
    let nativeWasmWrong = 0;
    for (const [h, k, s, pad] of [
      [5, 2, 2, 'valid'],
      [4, 2, 2, 'valid'],
      [6, 3, 2, 'valid'],
      [5, 3, 1, 'valid'],
      [5, 2, 2, 'same'],
      [7, 3, 2, 'same'],
      [8, 3, 1, 'same'],
    ] as const) {
      const x = randomBatch(h * h * 3, 2, 1, h * 31 + k).x;
      for (let i = 0; i + 3 < x.length; i += 7) x[i] = x[i + 3]!; // ties
      const shape: [number, number, number, number] = [2, h, h, 3];
      const native = await grad('cpu', false, x, shape, k, s, pad);
      const mismatches = (a: Float32Array) => a.reduce((c, v, i) => c + (v === native[i] ? 0 : 1), 0);
      assert.equal(
        mismatches(await grad('cpu', true, x, shape, k, s, pad)),
        0,
        `cpu portable ${h}/${k}/${s}/${pad}`,
      );
      assert.equal(
        mismatches(await grad('wasm', true, x, shape, k, s, pad)),
        0,
        `wasm portable ${h}/${k}/${s}/${pad}`,
      );
      nativeWasmWrong += mismatches(await grad('wasm', false, x, shape, k, s, pad));
    }
    // Informational: when this reaches 0 after a TF.js upgrade, wasm can leave PORTABLE_MAX_POOL_BACKENDS.
    console.log(
      `[engine] tfjs-backend-wasm's own MaxPoolGrad got ${nativeWasmWrong} input gradients wrong in these 7 cases`,
    );
  });

  it('step() on cpu is exactly residual.ts applied to gradient(): maps, n and r bit for bit, for every download and state layout', async () => {
    await selectBackend();
    const all = (['packed', 'sign', 'where'] as MapDownload[]).flatMap((d) =>
      (['blocks', 'flat'] as StateLayout[]).map((l) => [d, l] as const),
    );
    // The host layout downloads gradients, not signs: one download variant covers it.
    all.push(['sign', 'host']);
    for (const [def, batches, variants] of [
      [
        mnistMlpTask(),
        (i: number) => mnistBatch(mnist, 100 * i, 100),
        [
          ['packed', 'blocks'],
          ['sign', 'flat'],
          ['where', 'blocks'],
          ['sign', 'host'],
        ] as const,
      ],
      [CONV_TASK, (i: number) => randomBatch(98, 4, 3, 1000 + i), all],
    ] as const) {
      const tau = bitsToFloat32(def.tau);
      const expanded: [MapDownload, StateLayout, 'simd' | 'js' | undefined][] = [];
      for (const [download, stateLayout] of variants) {
        if (stateLayout !== 'host') expanded.push([download, stateLayout, undefined]);
        else for (const t of ['simd', 'js'] as const) expanded.push([download, stateLayout, t]);
      }
      for (const [download, stateLayout, threshold] of expanded) {
        const e = await createTfjsEngine(def, {
          backend: 'cpu',
          download,
          stateLayout,
          ...(threshold === undefined ? {} : { threshold }),
        });
        if (threshold !== undefined) assert.equal(e.residualPass, threshold);
        const m = e.parameterCount;
        const n = new Int32Array(m);
        const r = new Float32Array(m);
        for (let i = 0; i < 6; i++) {
          const batch = batches(i);
          if (i === 2) {
            // A peer's update arrives between two local steps.
            const peer = Uint32Array.from([makeEntry(0, 1), makeEntry(3, -1), makeEntry(m - 1, 1)]);
            applyMap(n, peer);
            await e.applyMap(peer);
          }
          const g = await e.gradient(n, batch);
          // Step 3 is a flush iteration (the last of a segment): τ/2, then r = 0.
          const flushIteration = i === 3;
          const want = residualStep(r, g.gradient, tau, flushIteration);
          applyMap(n, want);
          const got = await e.step(batch, flushIteration);
          assert.deepEqual(
            Array.from(got.map),
            Array.from(want),
            `${download}/${stateLayout} step ${i}: map`,
          );
          assert.equal(got.loss, g.loss);
          assert.equal(got.accuracy, g.accuracy);
          if (i === 4) {
            const flushWant = flushResidual(r, tau);
            applyMap(n, flushWant);
            assert.deepEqual(Array.from(await e.flush()), Array.from(flushWant), `${download}: flush map`);
          }
          const s = await e.state();
          assert.deepEqual(Array.from(s.n), Array.from(n), `${download} step ${i}: n`);
          assert.deepEqual(
            new Uint8Array(s.r.buffer),
            new Uint8Array(r.buffer),
            `${download} step ${i}: r bit for bit`,
          );
        }
        e.dispose();
      }
    }
  });

  it('setState, applyMap, flush and state follow residual.ts; malformed input is rejected', async () => {
    await selectBackend();
    const def = DENSE_TASK;
    const tau = bitsToFloat32(def.tau);
    for (const [backend, stateLayout] of [
      ['cpu', 'host'],
      ['cpu', 'blocks'],
      ['cpu', 'flat'],
      ['wasm', 'host'],
      ['wasm', 'blocks'],
      ['wasm', 'flat'],
    ] as const) {
      const e = await createTfjsEngine(def, { backend, stateLayout });
      const m = e.parameterCount;
      // A fresh engine is at n = 0, r = 0.
      const s0 = await e.state();
      assert.ok(s0.n.every((v) => v === 0) && s0.r.every((v) => v === 0));
      const n = Int32Array.from({ length: m }, (_, j) => j - 20);
      const r = Float32Array.from({ length: m }, (_, j) => ((j % 9) - 4) * tau * 0.3);
      await e.setState(n, r);
      n[0] = 999; // the engine copied its input
      const s1 = await e.state();
      assert.equal(s1.n[0], -20);
      assert.deepEqual(Array.from(s1.r), Array.from(r));
      // applyMap: n += map.
      const map = Uint32Array.from([makeEntry(1, 1), makeEntry(5, -1), makeEntry(m - 1, 1)]);
      await e.applyMap(map);
      const want = s1.n.slice();
      applyMap(want, map);
      assert.deepEqual(Array.from((await e.state()).n), Array.from(want));
      await e.applyMap(new Uint32Array(0));
      await assert.rejects(async () => e.applyMap(Uint32Array.from([makeEntry(5, 1), makeEntry(2, 1)])), {
        code: 'MAP_NOT_SORTED',
      });
      await assert.rejects(async () => e.applyMap(Uint32Array.from([makeEntry(m, 1)])), {
        code: 'MAP_OUT_OF_RANGE',
      });
      // flush: |r| > τ/2 into the map (and n), r = 0.
      const rf = r.slice();
      const flushWant = flushResidual(rf, tau);
      assert.ok(flushWant.length > 0);
      applyMap(want, flushWant);
      assert.deepEqual(Array.from(await e.flush()), Array.from(flushWant));
      const s2 = await e.state();
      assert.deepEqual(Array.from(s2.n), Array.from(want));
      assert.ok(s2.r.every((v) => v === 0));
      assert.equal((await e.flush()).length, 0);
      // Shapes and ranges.
      await assert.rejects(async () => e.setState(new Int32Array(m - 1)), { code: 'VERIFY_MODEL_HASH' });
      await assert.rejects(async () => e.setState(new Int32Array(m).fill(2 ** 24)), {
        code: 'VERIFY_MODEL_HASH',
      });
      await assert.rejects(async () => e.step({ x: new Float32Array(9), labels: new Uint8Array(2) }), {
        code: 'VERIFY_BATCH',
      });
      await assert.rejects(async () => e.step({ x: new Float32Array(10), labels: Uint8Array.from([0, 3]) }), {
        code: 'VERIFY_BATCH',
      });
      e.dispose();
      await assert.rejects(() => e.state(), { code: 'BACKEND_UNAVAILABLE' });
    }
  });

  it('non-finite residual entries behave as in residual.ts: NaN never enters a map or n, ±Inf does', async () => {
    await selectBackend();
    const def = DENSE_TASK;
    const tau = bitsToFloat32(def.tau);
    const batch = randomBatch(5, 4, 3, 8);
    for (const backend of BACKENDS) {
      for (const [download, stateLayout] of [
        ['packed', 'blocks'],
        ['sign', 'flat'],
        ['where', 'blocks'],
        ['sign', 'host'],
      ] as const) {
        const e = await createTfjsEngine(def, { backend, download, stateLayout });
        const m = e.parameterCount;
        const n = new Int32Array(m);
        const r = Float32Array.from({ length: m }, (_, j) =>
          j % 5 === 0
            ? Number.NaN
            : j % 13 === 0
              ? Number.POSITIVE_INFINITY
              : j % 17 === 0
                ? Number.NEGATIVE_INFINITY
                : 0,
        );
        await e.setState(n, r);
        const g = await e.gradient(n, batch);
        const want = accumulateAndThreshold(r, g.gradient, tau);
        applyMap(n, want);
        const got = await e.step(batch);
        const label = `${backend}/${download}/${stateLayout}`;
        assert.deepEqual(Array.from(got.map), Array.from(want), `${label}: map`);
        const s = await e.state();
        assert.deepEqual(Array.from(s.n), Array.from(n), `${label}: n`);
        assert.ok(
          s.r.every((v, j) => Object.is(v, r[j]) || (Number.isNaN(v) && Number.isNaN(r[j]))),
          `${label}: r`,
        );
        const flushWant = flushResidual(r, tau);
        assert.deepEqual(Array.from(await e.flush()), Array.from(flushWant), `${label}: flush`);
        e.dispose();
      }
    }
  });

  it('the same updates give the same n (the hashed state) on cpu and wasm', async () => {
    await selectBackend();
    const def = mnistMlpTask();
    const cpu = await createTfjsEngine(def, { backend: 'cpu' });
    const wasm = await createTfjsEngine(def, { backend: 'wasm' });
    for (let i = 0; i < 3; i++) {
      // cpu mines; wasm applies cpu's maps as peer updates; both apply a third party's map.
      const { map } = await cpu.step(mnistBatch(mnist, 100 * i, 100));
      await wasm.applyMap(map);
      const peer = Uint32Array.from({ length: 50 }, (_, k) => makeEntry(k * 2000 + i, k % 2 === 0 ? 1 : -1));
      await cpu.applyMap(peer);
      await wasm.applyMap(peer);
    }
    const flush = await cpu.flush();
    await wasm.applyMap(flush);
    const [a, b] = [await cpu.state(), await wasm.state()];
    assert.deepEqual(new Uint8Array(a.n.buffer), new Uint8Array(b.n.buffer));
    assert.ok(a.n.some((v) => v !== 0));
    cpu.dispose();
    wasm.dispose();
  });

  it('no tensor leaks over many calls, and dispose() frees the engine', async () => {
    await selectBackend();
    for (const backend of BACKENDS) {
      for (const [download, stateLayout] of [
        ['packed', 'flat'],
        ['where', 'blocks'],
        ['sign', 'blocks'],
        ['sign', 'host'],
      ] as const) {
        await selectBackend({ force: backend });
        const base = tf.memory().numTensors;
        const e = await createTfjsEngine(CONV_TASK, { backend, download, stateLayout });
        const batch = randomBatch(98, 4, 3, 3);
        await e.step(batch);
        const held = tf.memory().numTensors;
        const n = new Int32Array(e.parameterCount);
        for (let i = 0; i < 30; i++) {
          await e.step(batch);
          if (i % 5 === 0) await e.flush();
          await e.applyMap(Uint32Array.from([makeEntry(i, 1)]));
          await e.gradient(n, batch);
          await e.evaluate(n, batch);
          await e.state();
        }
        await e.setState(n);
        assert.equal(
          tf.memory().numTensors,
          held,
          `${backend}/${download}/${stateLayout}: tensors held stay constant`,
        );
        e.dispose();
        await e.flush().catch(() => undefined); // queued after the disposal
        await new Promise((resolve) => setTimeout(resolve, 0));
        assert.equal(
          tf.memory().numTensors,
          base,
          `${backend}/${download}/${stateLayout}: all freed after dispose`,
        );
      }
    }
  });

  it('MNIST MLP on the packed digits: > 85% held-out accuracy on wasm after 200 steps', async () => {
    await selectBackend();
    // τ = 1 (u = η·τ/B = 1e-3): with mnistMlpTask's τ = 0.01 almost every weight moves by only
    // u = 1e-5 per step (maps of ~78k of 109k entries) and 300 steps reach only ~41%.
    const def = mnistMlpTask({ tau: float32Bits(1) });
    const e = await createTfjsEngine(def, { backend: 'wasm' });
    const t0 = performance.now();
    let entries = 0;
    for (let i = 0; i < 200; i++) {
      entries += (await e.step(mnistBatch(mnist, (100 * i) % 8000, 100))).map.length;
      if ((i + 1) % def.segmentLength === 0) entries += (await e.flush()).length;
    }
    const ms = (performance.now() - t0) / 200;
    const { n } = await e.state();
    const held = await e.evaluate(n, mnistHeldOut(mnist));
    console.log(
      `[engine] MNIST MLP, wasm, η=0.1, τ=1: held-out accuracy ${(100 * held.accuracy).toFixed(1)}%, loss ${held.loss.toFixed(3)} after 200 steps; ${(entries / 200).toFixed(0)} map entries per step; ${ms.toFixed(1)} ms/step`,
    );
    assert.ok(held.accuracy > 0.85);
    e.dispose();
  });

  it('MNIST MLP, B=100: cpu vs wasm residual divergence along one trajectory (the numbers that choose ε)', async () => {
    await selectBackend();
    for (const [tau, iterations] of [
      [0.01, 150],
      [1, 40],
    ] as const) {
      const def = mnistMlpTask({ tau: float32Bits(tau) });
      const cpu = await createTfjsEngine(def, { backend: 'cpu' });
      const wasm = await createTfjsEngine(def, { backend: 'wasm' });
      const meter = new DivergenceMeter(cpu.parameterCount, bitsToFloat32(def.tau), def.segmentLength, [
        'wasm',
      ]);
      for (let i = 0; i < iterations; i++) {
        const batch = mnistBatch(mnist, (100 * i) % 8000, 100);
        const n = meter.n.slice();
        const ref = await cpu.gradient(n, batch);
        const other = await wasm.gradient(n, batch);
        meter.step(ref.gradient, { wasm: other.gradient });
      }
      const report = meter.report();
      console.log(
        `[engine] ${formatDivergence(`MNIST MLP under Node, η=0.1, τ=${tau}, cpu reference`, report)}`,
      );
      assert.ok(report.backends[0]!.maxResidualDiff < 1e-4);
      cpu.dispose();
      wasm.dispose();
    }
  });

  it('ms per step: PoUW step vs plain TF.js SGD step (MNIST MLP, B=100), per backend, map download and state layout', async () => {
    await selectBackend();
    const def = mnistMlpTask({ tau: float32Bits(1) });
    const lines: string[] = [];
    for (const backend of BACKENDS) {
      const variants: { download?: MapDownload; stateLayout?: StateLayout }[] = [
        {},
        { download: 'packed' },
        { download: 'sign' },
        { download: 'where' },
        { stateLayout: 'blocks' },
        { stateLayout: 'flat' },
      ];
      const plain = await createPlainSgd(def, backend);
      const engines = await Promise.all(variants.map((o) => createTfjsEngine(def, { backend, ...o })));
      const runners: [string, (b: Batch) => Promise<unknown>][] = [
        ['plain TF.js', (b) => plainSgdStep(plain, b)],
        // The same, with TF.js's own dense gradient (transposed matMuls: slow on wasm).
        [
          'plain TF.js, stock dense gradient',
          async (b) => {
            const had = EXPLICIT_TRANSPOSE_BACKENDS.delete(backend);
            try {
              return await plainSgdStep(plain, b);
            } finally {
              if (had) EXPLICIT_TRANSPOSE_BACKENDS.add(backend);
            }
          },
        ],
        ...engines.map((e, i): [string, (b: Batch) => Promise<unknown>] => [
          `PoUW ${i === 0 ? `default (${e.download}, ${e.stateLayout})` : JSON.stringify(variants[i])}`,
          (b) => e.step(b),
        ]),
      ];
      // Interleaved rounds. The machine is shared, so besides wall-clock time the process's CPU time
      // per step is recorded (the engine is single-threaded here): far steadier under load.
      const rounds = backend === 'cpu' ? 5 : 20;
      const wall = runners.map(() => [] as number[]);
      const cpu = runners.map(() => [] as number[]);
      for (const [, run] of runners) await run(mnistBatch(mnist, 0, 100));
      for (let i = 0; i < rounds; i++) {
        const batch = mnistBatch(mnist, 100 * i, 100);
        for (const [k, [, run]] of runners.entries()) {
          const t = performance.now();
          const c = process.cpuUsage();
          await run(batch);
          const d = process.cpuUsage(c);
          wall[k]!.push(performance.now() - t);
          cpu[k]!.push((d.user + d.system) / 1000);
        }
      }
      const sorted = (xs: number[]) => xs.slice().sort((x, y) => x - y);
      const median = (xs: number[]) => sorted(xs)[Math.floor(xs.length / 2)]!;
      const base = median(cpu[0]!);
      lines.push(
        `${backend}: ${runners.map(([name], k) => `${name} ${median(cpu[k]!).toFixed(1)} ms (×${(median(cpu[k]!) / base).toFixed(2)}; wall min ${sorted(wall[k]!)[0]!.toFixed(1)})`).join('; ')}`,
      );
      plain.dispose();
      for (const e of engines) e.dispose();
    }
    console.log(
      `[engine] MNIST MLP B=100 under Node, median CPU time per step (× plain TF.js):\n  ${lines.join('\n  ')}`,
    );
  });
});
