/**
 * The TensorFlow.js training engine (DESIGN §4.4, ADR 0008): one backend-agnostic implementation of
 * `TrainingEngine` for any task definition (dense, conv2d, max-pool and flatten layers; relu, tanh,
 * softmax and linear activations; cross-entropy with the softmax fused, or MSE).
 *
 * Weights are never trained as floats. The device holds w0 (constant), the lattice point n (float32
 * holding integers: exact below 2^24, checked on upload) and the residual r (float32); every call
 * computes w = w0 − u·n on the device (one multiply, one subtract: bit-identical to `weightsOf` on
 * cpu and wasm), takes the gradient of the batch-SUMMED loss, and `step()` does r += g, thresholds
 * at τ, n += sign, r −= sign·τ on the device. One download per step brings back the sign vector
 * (packed 2 bits per weight, 11 weights per float32 word, or plain; see MapDownload) and two scalars
 * (loss sum, number correct); the map is decoded from it.
 *
 * This module imports only `@tensorflow/tfjs-core`: backends (and tfjs-core's gradient functions)
 * are registered by backends-node.ts or backends-browser.ts. TF.js has one global engine whose
 * active backend every op uses, so every call here runs exclusively (a module-wide queue) and first
 * switches to the engine's own backend.
 *
 * Backend workarounds (each tested against cpu and finite differences): wasm has no
 * Conv2DBackpropFilter kernel (the filter gradient is computed as a conv2d), its MaxPoolGrad is
 * wrong for windows whose maximum is negative (an op-built gradient replaces it), and its matMul with
 * a transposed operand is ~6× slower than an explicit transpose (dense layers transpose explicitly).
 */
import * as tf from '@tensorflow/tfjs-core';
import { WorkError } from '../../shared/errors.ts';
import type { Batch, GradientResult, LocalStepResult, TrainingEngine } from '../../shared/pouw/engine.ts';
import { initialWeights } from '../../shared/pouw/init.ts';
import {
  assertMap,
  flushResidual,
  INDEX_MASK,
  SIGN_BIT,
  thresholdInto,
  weightsOf,
} from '../../shared/pouw/residual.ts';
import {
  Activation,
  bitsToFloat32,
  denseSoftmaxTask,
  LayerKind,
  Loss,
  type ModelLayout,
  modelLayout,
  Padding,
  type ParameterBlock,
  type TaskDefinition,
  weightUnit,
} from '../../shared/pouw/task.ts';
import { createSimdThreshold, type SimdThreshold } from '../../shared/pouw/threshold-simd.ts';

/**
 * How step() and flush() move the map off the device (default: 'sign' on wasm, where a download is
 * a memory copy and packing costs more than it saves; 'packed' on cpu, webgl and webgpu).
 * - 'packed': 2-bit sign codes packed 11 to a word on the device (exact even where int32 is
 *   emulated in float32, as on WebGL), one float32 download of ⌈|M|/11⌉ + 2 words (≈ 0.36 B/weight).
 * - 'sign': the full sign vector as float32 (4 bytes per weight) + 2 words, scanned in JS.
 * - 'where': tf.whereAsync on the mask (downloads the mask), then the gathered signs and the two
 *   scalars (three downloads). Kept for the measurements in ADR 0008.
 */
export type MapDownload = 'packed' | 'sign' | 'where';

export interface TfjsEngineOptions {
  /** TF.js backend to run on (registered and able to initialize); default: the active one. */
  backend?: string;
  download?: MapDownload;
  /** Default: 'host' on cpu and wasm, 'flat' on webgl and webgpu (see StateLayout). */
  stateLayout?: StateLayout;
  /** Examples per forward pass in evaluate() (bounds device memory). Default 1000. */
  evalChunk?: number;
  /**
   * The host layout's residual pass: 'simd' (default where WebAssembly SIMD exists: the
   * threshold-simd.ts kernel) or 'js' (residual.ts `thresholdInto`); bit for bit the same.
   */
  threshold?: 'simd' | 'js';
}

/** Sign codes per packed word: 2 bits each, 22 bits < 2^24, exact in float32. */
const PACK = 11;

// ---------------------------------------------------------------------------------------------
// Exclusive access to the global TF.js engine.

let queue: Promise<unknown> = Promise.resolve();

/** Runs `fn` after every call queued before it, on `backend`. */
function exclusive<T>(backend: string, fn: () => Promise<T> | T): Promise<T> {
  const run = queue.then(async () => {
    await useBackend(backend);
    return fn();
  });
  queue = run.catch(() => undefined);
  return run;
}

async function useBackend(name: string): Promise<void> {
  if (tf.getBackend() === name) return;
  let ok = false;
  try {
    ok = await tf.setBackend(name);
  } catch (e) {
    throw new WorkError('BACKEND_UNAVAILABLE', `TF.js backend ${name}: ${String(e)}`, 'IGNORE', {
      backend: name,
    });
  }
  if (!ok)
    throw new WorkError('BACKEND_UNAVAILABLE', `TF.js backend ${name} failed to initialize`, 'IGNORE', {
      backend: name,
    });
}

// ---------------------------------------------------------------------------------------------
// The model: a pure function of the flat parameter blocks.

export interface TfjsModel {
  readonly def: TaskDefinition;
  readonly layout: ModelLayout;
  /** The output used by the loss: logits when cross-entropy fuses the softmax, activations otherwise. */
  forward(x: tf.Tensor, params: readonly tf.Tensor[]): tf.Tensor2D;
  /** Batch-summed loss of `out` against one-hot targets. */
  lossSum(out: tf.Tensor2D, onehot: tf.Tensor2D): tf.Scalar;
}

/**
 * The filter gradient of a conv2d as a conv2d (batch and channels swapped, the output gradient as a
 * filter dilated by the stride), for backends without a Conv2DBackpropFilter kernel (wasm):
 * dW[kh,kw,ci,co] = Σ_b Σ_ij x[b, i·s + kh, j·s + kw, ci] · dy[b, i, j, co].
 */
function conv2dFilterGrad(
  x: tf.Tensor4D,
  dy: tf.Tensor4D,
  k: number,
  stride: number,
  padding: 'valid' | 'same',
): tf.Tensor4D {
  let xp = x;
  if (padding === 'same') {
    const [, h, w] = x.shape;
    const [, oh, ow] = dy.shape;
    const ph = Math.max((oh - 1) * stride + k - h, 0);
    const pw = Math.max((ow - 1) * stride + k - w, 0);
    xp = tf.pad(x, [
      [0, 0],
      [Math.floor(ph / 2), ph - Math.floor(ph / 2)],
      [Math.floor(pw / 2), pw - Math.floor(pw / 2)],
      [0, 0],
    ]);
  }
  const full = tf.conv2d(
    tf.transpose(xp, [3, 1, 2, 0]),
    tf.transpose(dy, [1, 2, 0, 3]),
    1,
    'valid',
    'NHWC',
    stride,
  );
  return tf.transpose(tf.slice(full, [0, 0, 0, 0], [-1, k, k, -1]), [1, 2, 0, 3]);
}

/** conv2d whose gradient avoids the Conv2DBackpropFilter kernel (see conv2dFilterGrad). */
function conv2dPortable(
  x: tf.Tensor4D,
  filter: tf.Tensor4D,
  k: number,
  stride: number,
  padding: 'valid' | 'same',
): tf.Tensor4D {
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [xa, fa, save] = args as [tf.Tensor4D, tf.Tensor4D, tf.GradSaveFunc];
    save([xa, fa]);
    return {
      value: tf.conv2d(xa, fa, stride, padding),
      gradFunc: (dy: tf.Tensor4D, saved: tf.Tensor[]) => {
        const [xs, fs] = saved as [tf.Tensor4D, tf.Tensor4D];
        return [
          tf.conv2dTranspose(dy, fs, xs.shape, stride, padding),
          conv2dFilterGrad(xs, dy, k, stride, padding),
        ];
      },
    };
  });
  return op(x, filter) as tf.Tensor4D;
}

/**
 * Backends whose MaxPoolGrad kernel is wrong: tfjs-backend-wasm 4.22 routes the gradient of a window
 * whose maximum is negative to the wrong input (its MaxPoolWithArgmax returns index 0 there too).
 * On these, max-pool gets the gradient below, built from ops that are correct everywhere.
 */
export const PORTABLE_MAX_POOL_BACKENDS = new Set<string>(['wasm']);

/** Interleaves s − 1 zero rows after every row of axis 1 of [b, rows, cols, c] → [b, rows·s, cols, c]. */
function spreadRows(t: tf.Tensor4D, s: number): tf.Tensor4D {
  if (s === 1) return t;
  const [b, rows, cols, c] = t.shape;
  const padded = tf.pad(tf.reshape(t, [b, rows, 1, cols * c]), [
    [0, 0],
    [0, 0],
    [0, s - 1],
    [0, 0],
  ]);
  return tf.reshape(padded, [b, rows * s, cols, c]);
}

/** Pads (or crops trailing zeros of) axis 1 so the data starts at `start` and the axis has `size` rows. */
function placeRows(t: tf.Tensor4D, start: number, size: number): tf.Tensor4D {
  const rows = t.shape[1];
  const end = start + rows;
  const padded = tf.pad(t, [
    [0, 0],
    [start, Math.max(size - end, 0)],
    [0, 0],
    [0, 0],
  ]);
  return end > size ? tf.slice(padded, [0, 0, 0, 0], [-1, size, -1, -1]) : padded;
}

/**
 * The max-pool gradient from ops: for each window offset (di, dj) in scan order, the entries equal
 * to the window's maximum that no earlier offset claimed (TF's first-maximum rule) receive dy, placed
 * back at rows di + i·s, columns dj + j·s.
 */
function maxPoolGrad(
  x: tf.Tensor4D,
  y: tf.Tensor4D,
  dy: tf.Tensor4D,
  k: number,
  s: number,
  padding: 'valid' | 'same',
): tf.Tensor4D {
  const [b, h, w, c] = x.shape;
  const [, oh, ow] = y.shape;
  const ph = padding === 'same' ? Math.max((oh - 1) * s + k - h, 0) : 0;
  const pw = padding === 'same' ? Math.max((ow - 1) * s + k - w, 0) : 0;
  const top = Math.floor(ph / 2);
  const left = Math.floor(pw / 2);
  const xp =
    ph + pw === 0
      ? x
      : tf.pad(
          x,
          [
            [0, 0],
            [top, ph - top],
            [left, pw - left],
            [0, 0],
          ],
          Number.NEGATIVE_INFINITY,
        );
  const [hp, wp] = [h + ph, w + pw];
  let taken: tf.Tensor | null = null;
  let dx: tf.Tensor4D | null = null;
  for (let di = 0; di < k; di++) {
    for (let dj = 0; dj < k; dj++) {
      const xo = tf.stridedSlice(
        xp,
        [0, di, dj, 0],
        [b, di + (oh - 1) * s + 1, dj + (ow - 1) * s + 1, c],
        [1, s, s, 1],
      );
      let m = tf.equal(xo, y);
      if (taken !== null) m = tf.logicalAnd(m, tf.logicalNot(taken));
      taken = taken === null ? m : tf.logicalOr(taken, m);
      const rows = placeRows(spreadRows(tf.mul(dy, tf.cast(m, 'float32')), s), di, hp);
      // Columns: the same on the transposed tensor.
      const cols = tf.transpose(
        placeRows(spreadRows(tf.transpose(rows, [0, 2, 1, 3]), s), dj, wp),
        [0, 2, 1, 3],
      );
      dx = dx === null ? cols : tf.add(dx, cols);
    }
  }
  return ph + pw === 0 ? dx! : tf.slice(dx!, [0, top, left, 0], [b, h, w, c]);
}

/** Max-pool as the engine runs it: tf.maxPool, with the op-built gradient on PORTABLE_MAX_POOL_BACKENDS. */
export function maxPool2d(x: tf.Tensor4D, k: number, s: number, padding: 'valid' | 'same'): tf.Tensor4D {
  if (!PORTABLE_MAX_POOL_BACKENDS.has(tf.getBackend())) return tf.maxPool(x, k, s, padding);
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [xa, save] = args as [tf.Tensor4D, tf.GradSaveFunc];
    const y = tf.maxPool(xa, k, s, padding);
    save([xa, y]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor4D, saved: tf.Tensor[]) =>
        maxPoolGrad(saved[0] as tf.Tensor4D, saved[1] as tf.Tensor4D, dy, k, s, padding),
    };
  });
  return op(x) as tf.Tensor4D;
}

/**
 * Backends where a matMul with a transposed operand is far slower than an explicit transpose and a
 * plain matMul (tfjs-backend-wasm 4.22: ~27 ms vs ~4 ms for the 784×100·100×128 kernel gradient of
 * the MNIST MLP's first layer, which dominates a training step). Dense layers there get the
 * gradient below.
 */
export const EXPLICIT_TRANSPOSE_BACKENDS = new Set<string>(['wasm']);

/**
 * x·W + b with dx = dy·Wᵀ, dW = xᵀ·dy, db = Σ dy, the transposes explicit. `inputGrad` false (the
 * layer reads the data, not a trained tensor) skips dx.
 */
function denseExplicitTranspose(
  x: tf.Tensor2D,
  kernel: tf.Tensor2D,
  bias: tf.Tensor,
  inputGrad: boolean,
): tf.Tensor2D {
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [xa, ka, ba, save] = args as [tf.Tensor2D, tf.Tensor2D, tf.Tensor, tf.GradSaveFunc];
    save([xa, ka]);
    return {
      value: tf.add(tf.matMul(xa, ka), ba) as tf.Tensor2D,
      gradFunc: (dy: tf.Tensor2D, saved: tf.Tensor[]) => {
        const [xs, ks] = saved as [tf.Tensor2D, tf.Tensor2D];
        return [
          inputGrad ? tf.matMul(dy, tf.transpose(ks)) : tf.zerosLike(xs),
          tf.matMul(tf.transpose(xs), dy),
          tf.sum(dy, 0),
        ];
      },
    };
  });
  return op(x, kernel, bias) as tf.Tensor2D;
}

function activate(h: tf.Tensor, activation: number): tf.Tensor {
  switch (activation) {
    case Activation.RELU:
      return tf.relu(h);
    case Activation.TANH:
      return tf.tanh(h);
    case Activation.SOFTMAX:
      return tf.softmax(h);
    default:
      return h;
  }
}

export function buildModel(def: TaskDefinition): TfjsModel {
  const layout = modelLayout(def);
  const fusedCrossEntropy = def.loss === Loss.CROSS_ENTROPY;
  const last = def.layers.length - 1;
  const pad = (p: number): 'valid' | 'same' => (p === Padding.SAME ? 'same' : 'valid');
  return {
    def,
    layout,
    forward(x, params) {
      const batch = x.shape[0]!;
      let h: tf.Tensor = tf.reshape(x, [batch, ...def.inputShape]);
      let p = 0;
      const backend = tf.getBackend();
      def.layers.forEach((l, i) => {
        // Cross-entropy applies the softmax itself (log-sum-exp): the last layer yields logits.
        const act = i === last && fusedCrossEntropy ? Activation.LINEAR : l.activation;
        const fusable = act === Activation.RELU ? 'relu' : 'linear';
        switch (l.kind) {
          case LayerKind.DENSE: {
            const trainedInput = p > 0; // an earlier layer has parameters, so dx is needed
            const kernel = params[p++]! as tf.Tensor2D;
            const bias = params[p++]!;
            if (EXPLICIT_TRANSPOSE_BACKENDS.has(backend)) {
              h = activate(denseExplicitTranspose(h as tf.Tensor2D, kernel, bias, trainedInput), act);
            } else {
              h = tf.fused.matMul({ a: h as tf.Tensor2D, b: kernel, bias, activation: fusable });
              if (act !== Activation.RELU) h = activate(h, act);
            }
            break;
          }
          case LayerKind.CONV2D: {
            const filter = params[p++]! as tf.Tensor4D;
            const bias = params[p++]!;
            if (tf.getKernel('Conv2DBackpropFilter', backend) === undefined) {
              h = activate(
                tf.add(
                  conv2dPortable(h as tf.Tensor4D, filter, l.kernelSize, l.stride, pad(l.padding)),
                  bias,
                ),
                act,
              );
            } else {
              h = tf.fused.conv2d({
                x: h as tf.Tensor4D,
                filter,
                strides: l.stride,
                pad: pad(l.padding),
                bias,
                activation: fusable,
              });
              if (act !== Activation.RELU) h = activate(h, act);
            }
            break;
          }
          case LayerKind.MAX_POOL2D:
            h = maxPool2d(h as tf.Tensor4D, l.kernelSize, l.stride, pad(l.padding));
            break;
          case LayerKind.FLATTEN:
            h = tf.reshape(h, [batch, -1]);
            break;
        }
      });
      return h as tf.Tensor2D;
    },
    lossSum(out, onehot) {
      if (fusedCrossEntropy) {
        // softmax − onehot as the gradient of the logits: the numerically stable fused form.
        return tf.losses.softmaxCrossEntropy(onehot, out, undefined, 0, tf.Reduction.SUM) as tf.Scalar;
      }
      // MSE: per example, the mean over the outputs of (y − onehot)²; summed over the batch.
      return tf.div(tf.sum(tf.squaredDifference(out, onehot)), def.numClasses);
    },
  };
}

function checkBatch(def: TaskDefinition, layout: ModelLayout, batch: Batch): number {
  const b = batch.labels.length;
  if (b === 0 || batch.x.length !== b * layout.inputSize) {
    throw new WorkError(
      'VERIFY_BATCH',
      `batch of ${b} labels needs ${b * layout.inputSize} features, got ${batch.x.length}`,
    );
  }
  for (let i = 0; i < b; i++) {
    if (batch.labels[i]! >= def.numClasses)
      throw new WorkError('VERIFY_BATCH', `label ${batch.labels[i]} at ${i} ≥ ${def.numClasses} classes`);
  }
  return b;
}

/** Uploads a batch (inside a tidy): x as [B, inputSize], int32 labels and their one-hot rows. */
function batchTensors(
  def: TaskDefinition,
  layout: ModelLayout,
  batch: Batch,
  from = 0,
  count = batch.labels.length,
) {
  const x = tf.tensor2d(batch.x.slice(from * layout.inputSize, (from + count) * layout.inputSize), [
    count,
    layout.inputSize,
  ]);
  const labels = tf.tensor1d(Int32Array.from(batch.labels.subarray(from, from + count)), 'int32');
  const onehot = tf.cast(tf.oneHot(labels, def.numClasses), 'float32') as tf.Tensor2D;
  return { x, labels, onehot };
}

function correctCount(out: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar {
  return tf.sum(tf.cast(tf.equal(tf.argMax(out, 1), labels), 'float32'));
}

// ---------------------------------------------------------------------------------------------
// Map packing.

/** Where one parameter block's packed words sit in the download. */
interface PackedBlock {
  offset: number;
  size: number;
  wordOffset: number;
  words: number;
}

/** Decodes packed 2-bit sign codes (1 = +1, 2 = −1), block by block, into an encoded ascending map. */
function decodePacked(data: Float32Array, blocks: readonly PackedBlock[]): Uint32Array {
  const out: number[] = [];
  for (const b of blocks) {
    for (let w = 0; w < b.words; w++) {
      let v = data[b.wordOffset + w]! | 0;
      for (let j = b.offset + w * PACK; v !== 0; j++, v >>>= 2) {
        const c = v & 3;
        if (c === 1) out.push((j | SIGN_BIT) >>> 0);
        else if (c === 2) out.push(j);
      }
    }
  }
  return Uint32Array.from(out);
}

function decodeSigns(signs: Float32Array, length: number): Uint32Array {
  const out: number[] = [];
  for (let j = 0; j < length; j++) {
    const s = signs[j]!;
    if (s > 0) out.push((j | SIGN_BIT) >>> 0);
    else if (s < 0) out.push(j);
  }
  return Uint32Array.from(out);
}

/** |n_j| below this is exact in float32, where the device holds n (checked wherever n is uploaded). */
export const MAX_LATTICE_STEP = 2 ** 24;

// ---------------------------------------------------------------------------------------------
// The engine.

/**
 * Where the state lives.
 * - 'host' (default on cpu and wasm, whose "device" is this CPU's memory): n (Int32Array), the
 *   weights w = w0 − u·n (Float32Array, bit for bit `weightsOf`, kept current entry by entry as maps
 *   arrive: O(|map|) per map, never O(|M|)) and r (Float32Array) in this thread's memory. A step
 *   uploads w per parameter block (one copy each), takes the gradient, downloads the per-block
 *   gradients (one copy each) and thresholds them in one JS pass (residual.ts `thresholdInto`). On
 *   these backends that beats the element-wise kernels (comparisons are scalar code on wasm) and
 *   the per-map dense deltas of the device layouts (ADR 0008).
 * Device layouts keep w0 (constant), n (float32 holding integers, exact below 2^24) and r (float32)
 * as tensors, in segments of the flat parameter vector, each in its own shape:
 * - 'blocks': one segment per parameter block of the layout (kernel, bias, …), so the weights need
 *   no slicing (measured on wasm: the slices of a flat vector cost more than the whole residual
 *   update).
 * - 'flat' (default on webgl and webgpu): one segment for all |M| weights, so a step is a dozen
 *   kernel launches instead of a dozen per block; the layer weights are slices (shallow there).
 */
export type StateLayout = 'host' | 'blocks' | 'flat';

/** The 'host' layout's state: n, w = w0 − u·n and r as JS arrays, and map scratch space. */
interface HostState {
  w0: Float32Array;
  n: Int32Array;
  w: Float32Array;
  /** r: the SIMD kernel's memory when there is one. */
  r: Float32Array;
  out: Uint32Array;
  simd: SimdThreshold | undefined;
}

interface StateSegment extends PackedBlock {
  shape: number[];
  /** The layout's parameter blocks inside this segment, in order. */
  blocks: ParameterBlock[];
  w0: tf.Tensor;
  n: tf.Tensor;
  r: tf.Tensor;
}

export class TfjsTrainingEngine implements TrainingEngine {
  readonly backend: string;
  readonly parameterCount: number;
  readonly model: TfjsModel;
  readonly download: MapDownload;
  private readonly evalChunk: number;
  readonly stateLayout: StateLayout;
  /** The host layout's residual pass ('simd' or 'js'); undefined on device layouts. */
  get residualPass(): 'simd' | 'js' | undefined {
    return this.host === undefined ? undefined : this.host.simd === undefined ? 'js' : 'simd';
  }
  /** Device layouts: the state tensors by segment ([] for 'host'). */
  private readonly segments: StateSegment[];
  /** The 'host' layout's state. */
  private readonly host: HostState | undefined;
  private readonly wordCount: number;
  /** u = η·τ/B (float32) and τ, as numbers for the host layout. */
  private readonly uValue: number;
  private readonly tauValue: number;
  private readonly u: tf.Scalar;
  private readonly tau: tf.Scalar;
  private readonly negTau: tf.Scalar;
  private readonly halfTau: tf.Scalar;
  private readonly negHalfTau: tf.Scalar;
  private readonly powers: tf.Tensor2D;
  private disposed = false;

  /** Use `createTfjsEngine`, which initializes the backend first. */
  constructor(def: TaskDefinition, backend: string, options: TfjsEngineOptions = {}) {
    this.backend = backend;
    this.model = buildModel(def);
    this.parameterCount = this.model.layout.parameterCount;
    // wasm: a download is a memory copy, and the plain sign vector is cheapest (measured); cpu: its
    // concat of a 4-byte-per-weight vector costs more than packing; GPUs: 1/11 of the bytes to read back.
    this.download = options.download ?? (backend === 'wasm' ? 'sign' : 'packed');
    this.evalChunk = options.evalChunk ?? 1000;
    const tau = bitsToFloat32(def.tau);
    const w0 = initialWeights(this.model.layout, def.initSeed);
    this.stateLayout = options.stateLayout ?? (backend === 'webgl' || backend === 'webgpu' ? 'flat' : 'host');
    this.uValue = weightUnit(def);
    this.tauValue = tau;
    const m = this.model.layout.parameterCount;
    if (this.stateLayout === 'host') {
      const simd = options.threshold === 'js' ? undefined : createSimdThreshold(m);
      this.host = {
        w0,
        n: new Int32Array(m),
        w: w0.slice(),
        r: simd?.r ?? new Float32Array(m),
        out: new Uint32Array(m),
        simd,
      };
    } else {
      this.host = undefined;
    }
    const layoutBlocks = this.model.layout.blocks;
    const groups =
      this.stateLayout === 'host'
        ? []
        : this.stateLayout === 'flat'
          ? [layoutBlocks]
          : layoutBlocks.map((b) => [b]);
    let wordOffset = 0;
    this.segments = groups.map((blocks) => {
      const offset = blocks[0]!.offset;
      const size = blocks.reduce((a, b) => a + b.size, 0);
      const shape = blocks.length === 1 ? blocks[0]!.shape : [size];
      const words = Math.ceil(size / PACK);
      const segment: StateSegment = {
        offset,
        size,
        shape,
        blocks,
        wordOffset,
        words,
        w0: tf.tensor(w0.subarray(offset, offset + size), shape, 'float32'),
        n: tf.zeros(shape, 'float32'),
        r: tf.zeros(shape, 'float32'),
      };
      wordOffset += words;
      return segment;
    });
    this.wordCount = wordOffset;
    this.u = tf.scalar(weightUnit(def), 'float32');
    this.tau = tf.scalar(tau, 'float32');
    this.negTau = tf.scalar(-tau, 'float32');
    // τ/2 is exact in float32 (and in double, where residual.ts compares).
    this.halfTau = tf.scalar(tau / 2, 'float32');
    this.negHalfTau = tf.scalar(-tau / 2, 'float32');
    this.powers = tf.tensor2d(
      Float32Array.from({ length: PACK }, (_, k) => 4 ** k),
      [PACK, 1],
      'float32',
    );
  }

  private run<T>(fn: () => Promise<T> | T): Promise<T> {
    if (this.disposed)
      return Promise.reject(new WorkError('BACKEND_UNAVAILABLE', 'engine disposed', 'IGNORE'));
    return exclusive(this.backend, fn);
  }

  /** Uploads a flat n as per-segment float32 tensors (inside a tidy). */
  private uploadN(n: Int32Array): tf.Tensor[] {
    return this.segments.map((b) =>
      tf.tensor(Float32Array.from(n.subarray(b.offset, b.offset + b.size)), b.shape, 'float32'),
    );
  }

  /**
   * w = w0 − u·n per segment (one multiply and one subtract, as `weightsOf`), as the layout's
   * parameter blocks (inside a tidy).
   */
  private deviceParams(n: readonly tf.Tensor[]): tf.Tensor[] {
    return this.segments.flatMap((seg, i) => {
      const w = tf.sub(seg.w0, tf.mul(this.u, n[i]!));
      if (seg.blocks.length === 1) return [w];
      return seg.blocks.map((b) => tf.reshape(tf.slice(w, b.offset - seg.offset, b.size), b.shape));
    });
  }

  /** The layout's parameter blocks from a flat weight vector (inside a tidy; one upload each). */
  private hostParams(w: Float32Array): tf.Tensor[] {
    return this.model.layout.blocks.map((b) =>
      tf.tensor(w.subarray(b.offset, b.offset + b.size), b.shape, 'float32'),
    );
  }

  /** Weights of the lattice point n as parameter blocks (inside a tidy), for the stateless calls. */
  private paramsOf(n: Int32Array): tf.Tensor[] {
    if (this.host !== undefined) return this.hostParams(weightsOf(this.host.w0, n, this.uValue));
    return this.deviceParams(this.uploadN(n));
  }

  /**
   * Gradients of the batch-summed loss per parameter block, the loss sum and the number correct
   * (in a tidy).
   */
  private gradientTensors(params: tf.Tensor[], batch: Batch) {
    const { x, labels, onehot } = batchTensors(this.model.def, this.model.layout, batch);
    let out: tf.Tensor2D | undefined;
    const f = (...p: tf.Tensor[]) => {
      out = tf.keep(this.model.forward(x, p));
      return this.model.lossSum(out, onehot);
    };
    const { value, grads } = tf.valueAndGrads(f)(params);
    const correct = correctCount(out!, labels);
    out!.dispose();
    return { grads, lossSum: value, correct };
  }

  /** Block gradients grouped by state segment (inside a tidy). */
  private segmentGrads(grads: readonly tf.Tensor[]): tf.Tensor[] {
    let k = 0;
    return this.segments.map((seg) => {
      const own = grads.slice(k, k + seg.blocks.length);
      k += seg.blocks.length;
      return own.length === 1 ? own[0]! : tf.concat(own.map((g) => tf.reshape(g, [-1])));
    });
  }

  /**
   * The gradient blocks and [loss sum, correct] of one forward and backward pass, kept (outside a
   * tidy): the host layout downloads each block into place, with no device-side concatenation.
   */
  private hostGradient(params: () => tf.Tensor[], batch: Batch): { grads: tf.Tensor[]; stats: tf.Tensor } {
    return tf.tidy(() => {
      const { grads, lossSum, correct } = this.gradientTensors(params(), batch);
      return { grads, stats: tf.stack([lossSum, correct]) };
    });
  }

  /** n += map and w_j = w0_j − u·n_j for the touched j (as `weightsOf`): O(|map|). */
  private hostApply(map: Uint32Array): void {
    const h = this.host!;
    const u = this.uValue;
    for (let i = 0; i < map.length; i++) {
      const e = map[i]!;
      const j = e & INDEX_MASK;
      const nj = h.n[j]! + ((e & SIGN_BIT) !== 0 ? 1 : -1);
      h.n[j] = nj;
      h.w[j] = h.w0[j]! - Math.fround(u * nj);
    }
  }

  /**
   * One thresholding pass over every block (inside a tidy): v = r + g (or r alone for a flush);
   * sign = [v > t] − [v < −t]; returns the new n and r blocks and the tensor to download.
   */
  private threshold(grads: readonly tf.Tensor[] | null, flush: boolean, stats: tf.Tensor1D) {
    const [hi, lo] = flush ? [this.halfTau, this.negHalfTau] : [this.tau, this.negTau];
    const n: tf.Tensor[] = [];
    const r: tf.Tensor[] = [];
    const parts: tf.Tensor1D[] = [];
    this.segments.forEach((b, i) => {
      const v = grads === null ? b.r : tf.add(b.r, grads[i]!);
      // Comparisons, as residual.ts: a NaN residual entry (a diverged gradient) never enters the map
      // and leaves n alone. (step(v − τ) is exact too and 1.7 ms faster per MNIST-MLP step on wasm,
      // but step(NaN) = NaN would put NaN into n and, packed, wipe the 10 other codes of its word.)
      const pos = tf.cast(tf.greater(v, hi), 'float32');
      const neg = tf.cast(tf.less(v, lo), 'float32');
      const sign = tf.sub(pos, neg);
      n.push(tf.add(b.n, sign));
      // v − sign·τ: exactly v − τ, v + τ or v (sign·τ is exact), as residual.ts computes it.
      r.push(flush ? tf.zerosLike(v) : tf.sub(v, tf.mul(sign, this.tau)));
      if (this.download === 'packed') {
        // code = pos + 2·neg ∈ {0, 1, 2}; words = codes [W, 11] · 4^k [11, 1]: every product and
        // partial sum is an integer below 2^23, so the matMul is exact in any summation order.
        const code = tf.reshape(tf.add(pos, tf.add(neg, neg)), [-1]);
        const tail = b.words * PACK - b.size;
        const padded = tail === 0 ? code : tf.concat([code, tf.zeros([tail], 'float32')]);
        parts.push(
          tf.reshape(tf.matMul(tf.reshape(padded, [b.words, PACK]), this.powers), [-1]) as tf.Tensor1D,
        );
      } else {
        parts.push(tf.reshape(sign, [-1]) as tf.Tensor1D);
      }
    });
    const signs = tf.concat(parts) as tf.Tensor1D;
    // 'where' downloads the stats alone and keeps the sign vector for whereAsync.
    const out = this.download === 'where' ? tf.concat([stats, signs]) : tf.concat([signs, stats]);
    return { n, r, out: out as tf.Tensor1D };
  }

  /** Downloads the map and the two stats. */
  private async readMap(out: tf.Tensor1D): Promise<{ map: Uint32Array; stats: [number, number] }> {
    if (this.download === 'where') {
      const { signs, stats } = tf.tidy(() => ({ signs: tf.slice(out, 2), stats: tf.slice(out, 0, 2) }));
      const mask = tf.notEqual(signs, 0);
      const idx = await tf.whereAsync(mask);
      const flat = tf.reshape(idx, [-1]);
      const gathered = tf.gather(signs, flat);
      const [iv, sv, st] = await Promise.all([flat.data(), gathered.data(), stats.data()]);
      for (const t of [signs, stats, mask, idx, flat, gathered]) t.dispose();
      const map = new Uint32Array(iv.length);
      for (let i = 0; i < iv.length; i++) map[i] = sv[i]! > 0 ? (iv[i]! | SIGN_BIT) >>> 0 : iv[i]!;
      return { map, stats: [st[0]!, st[1]!] };
    }
    const data = (await out.data()) as Float32Array;
    const words = this.download === 'sign' ? this.parameterCount : this.wordCount;
    const map = this.download === 'sign' ? decodeSigns(data, words) : decodePacked(data, this.segments);
    return { map, stats: [data[words]!, data[words + 1]!] };
  }

  private replaceState(n: tf.Tensor[], r: tf.Tensor[]): void {
    this.segments.forEach((b, i) => {
      b.n.dispose();
      b.r.dispose();
      b.n = n[i]!;
      b.r = r[i]!;
    });
  }

  async gradient(n: Int32Array, batch: Batch): Promise<GradientResult> {
    this.checkN(n);
    const b = checkBatch(this.model.def, this.model.layout, batch);
    return this.run(async () => {
      const m = this.parameterCount;
      if (this.host !== undefined) {
        const { grads, stats } = this.hostGradient(() => this.paramsOf(n), batch);
        try {
          const parts = await Promise.all([...grads, stats].map((t) => t.data() as Promise<Float32Array>));
          const gradient = new Float32Array(m);
          for (const [i, blk] of this.model.layout.blocks.entries()) gradient.set(parts[i]!, blk.offset);
          const st = parts[parts.length - 1]!;
          return { gradient, loss: st[0]! / b, accuracy: st[1]! / b };
        } finally {
          for (const t of [...grads, stats]) t.dispose();
        }
      }
      const out = tf.tidy(() => {
        const { grads, lossSum, correct } = this.gradientTensors(this.paramsOf(n), batch);
        return tf.concat([...grads.map((g) => tf.reshape(g, [-1])), tf.stack([lossSum, correct])]);
      });
      try {
        const data = (await out.data()) as Float32Array;
        return { gradient: data.slice(0, m), loss: data[m]! / b, accuracy: data[m + 1]! / b };
      } finally {
        out.dispose();
      }
    });
  }

  async evaluate(n: Int32Array, batch: Batch): Promise<{ loss: number; accuracy: number }> {
    this.checkN(n);
    const b = checkBatch(this.model.def, this.model.layout, batch);
    return this.run(async () => {
      const params = tf.tidy(() => this.paramsOf(n));
      let totals = tf.zeros([2]) as tf.Tensor1D;
      try {
        for (let from = 0; from < b; from += this.evalChunk) {
          const count = Math.min(this.evalChunk, b - from);
          const next = tf.tidy(() => {
            const { x, labels, onehot } = batchTensors(this.model.def, this.model.layout, batch, from, count);
            const out = this.model.forward(x, params);
            return tf.add(
              totals,
              tf.stack([this.model.lossSum(out, onehot), correctCount(out, labels)]),
            ) as tf.Tensor1D;
          });
          totals.dispose();
          totals = next;
        }
        const data = await totals.data();
        return { loss: data[0]! / b, accuracy: data[1]! / b };
      } finally {
        totals.dispose();
        for (const p of params) p.dispose();
      }
    });
  }

  async setState(n: Int32Array, r?: Float32Array): Promise<void> {
    this.checkN(n);
    if (r !== undefined && r.length !== this.parameterCount) {
      throw new WorkError(
        'VERIFY_HISTORY',
        `residual has ${r.length} entries, expected ${this.parameterCount}`,
      );
    }
    return this.run(() => {
      const h = this.host;
      if (h !== undefined) {
        h.n.set(n);
        if (r === undefined) h.r.fill(0);
        else h.r.set(r);
        h.w.set(weightsOf(h.w0, n, this.uValue));
        return;
      }
      const nt = this.uploadN(n);
      const rt = this.segments.map((b) =>
        r === undefined
          ? tf.zeros(b.shape, 'float32')
          : tf.tensor(r.slice(b.offset, b.offset + b.size), b.shape, 'float32'),
      );
      this.replaceState(nt, rt);
    });
  }

  async applyMap(map: Uint32Array): Promise<void> {
    assertMap(map, this.parameterCount);
    return this.run(() => {
      if (this.host !== undefined) return this.hostApply(map);
      // The map is sorted, so each segment's entries are one contiguous run. The update goes up as a
      // dense delta, not a scatter: a scatter's shader depends on the number of entries, and WebGL
      // compiles one per map length (minutes each on SwiftShader, milliseconds on a real GPU).
      let e = 0;
      for (const seg of this.segments) {
        const start = e;
        while (e < map.length && (map[e]! & INDEX_MASK) < seg.offset + seg.size) e++;
        if (e === start) continue;
        const delta = new Float32Array(seg.size);
        for (let i = start; i < e; i++) {
          const entry = map[i]!;
          delta[(entry & INDEX_MASK) - seg.offset] = (entry & SIGN_BIT) !== 0 ? 1 : -1;
        }
        const next = tf.tidy(() => tf.add(seg.n, tf.tensor(delta, seg.shape, 'float32')));
        seg.n.dispose();
        seg.n = next;
      }
    });
  }

  /**
   * The device's n and r are replaced before the map is read back: if the read-back fails (a lost
   * GPU context), reload the state with setState from the caller's own record before going on.
   */
  async step(batch: Batch, flush = false): Promise<LocalStepResult> {
    const b = checkBatch(this.model.def, this.model.layout, batch);
    return this.run(async () => {
      if (this.host !== undefined) return this.hostStep(batch, b, flush);
      const { n, r, out } = tf.tidy(() => {
        const { grads, lossSum, correct } = this.gradientTensors(
          this.deviceParams(this.segments.map((bl) => bl.n)),
          batch,
        );
        // A flush iteration (last of a segment) thresholds at τ/2 and resets r (residual.ts).
        return this.threshold(this.segmentGrads(grads), flush, tf.stack([lossSum, correct]) as tf.Tensor1D);
      });
      this.replaceState(n, r);
      try {
        const { map, stats } = await this.readMap(out);
        return { map, loss: stats[0] / b, accuracy: stats[1] / b };
      } finally {
        out.dispose();
      }
    });
  }

  /**
   * The host layout's step: gradient at w, every block downloaded before r changes (a failed read-back
   * leaves the state as it was), then residual.ts semantics in one pass and n, w += map.
   */
  private async hostStep(batch: Batch, b: number, flush: boolean): Promise<LocalStepResult> {
    const h = this.host!;
    const { grads, stats } = this.hostGradient(() => this.hostParams(h.w), batch);
    let parts: Float32Array[];
    try {
      parts = await Promise.all([...grads, stats].map((t) => t.data() as Promise<Float32Array>));
    } finally {
      for (const t of [...grads, stats]) t.dispose();
    }
    const tau = this.tauValue;
    const threshold = flush ? tau / 2 : tau;
    let map: Uint32Array;
    const blocks = this.model.layout.blocks;
    if (h.simd !== undefined) {
      for (const [i, blk] of blocks.entries()) h.simd.g.set(parts[i]!, blk.offset);
      map = h.simd.run(tau, threshold);
    } else {
      let k = 0;
      blocks.forEach((blk, i) => {
        k = thresholdInto(h.r, blk.offset, parts[i]!, tau, threshold, h.out, k);
      });
      map = h.out.slice(0, k);
    }
    if (flush) h.r.fill(0);
    this.hostApply(map);
    const st = parts[parts.length - 1]!;
    return { map, loss: st[0]! / b, accuracy: st[1]! / b };
  }

  flush(): Promise<Uint32Array> {
    return this.run(async () => {
      if (this.host !== undefined) {
        const map = flushResidual(this.host.r, this.tauValue);
        this.hostApply(map);
        return map;
      }
      const { n, r, out } = tf.tidy(() => this.threshold(null, true, tf.zeros([2]) as tf.Tensor1D));
      this.replaceState(n, r);
      try {
        return (await this.readMap(out)).map;
      } finally {
        out.dispose();
      }
    });
  }

  state(): Promise<{ n: Int32Array; r: Float32Array }> {
    return this.run(async () => {
      if (this.host !== undefined) return { n: this.host.n.slice(), r: this.host.r.slice() };
      const flat = tf.tidy(() => [
        tf.concat(this.segments.map((b) => tf.reshape(b.n, [-1]))),
        tf.concat(this.segments.map((b) => tf.reshape(b.r, [-1]))),
      ]);
      try {
        const [n, r] = await Promise.all(flat.map((t) => t.data()));
        return { n: Int32Array.from(n as Float32Array), r: Float32Array.from(r as Float32Array) };
      } finally {
        for (const t of flat) t.dispose();
      }
    });
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    // After every call already queued on this engine has finished.
    void queue.then(() => {
      for (const t of [this.u, this.tau, this.negTau, this.halfTau, this.negHalfTau, this.powers])
        t.dispose();
      for (const b of this.segments) for (const t of [b.w0, b.n, b.r]) t.dispose();
    });
  }

  private checkN(n: Int32Array): void {
    if (n.length !== this.parameterCount) {
      throw new WorkError('VERIFY_MODEL_HASH', `n has ${n.length} entries, expected ${this.parameterCount}`);
    }
    for (let j = 0; j < n.length; j++) {
      if (n[j]! >= MAX_LATTICE_STEP || n[j]! <= -MAX_LATTICE_STEP) {
        throw new WorkError('VERIFY_MODEL_HASH', `n[${j}] = ${n[j]} is beyond ±2^24, not exact in float32`);
      }
    }
  }
}

/** Creates an engine for `def` on `options.backend` (default: the active TF.js backend). */
export async function createTfjsEngine(
  def: TaskDefinition,
  options: TfjsEngineOptions = {},
): Promise<TfjsTrainingEngine> {
  const backend = options.backend ?? tf.getBackend();
  if (!backend) throw new WorkError('BACKEND_UNAVAILABLE', 'no TF.js backend is registered', 'IGNORE');
  return exclusive(backend, () => new TfjsTrainingEngine(def, backend, options));
}

// ---------------------------------------------------------------------------------------------
// The plain TF.js baseline: the same model trained the ordinary way (float variables, tf.train.sgd
// on the mean loss), for the benchmark "PoUW iteration ÷ plain TF.js step".

export class PlainSgdModel {
  readonly backend: string;
  readonly model: TfjsModel;
  readonly variables: tf.Variable[];
  readonly optimizer: tf.SGDOptimizer;
  constructor(def: TaskDefinition, backend: string) {
    this.backend = backend;
    this.model = buildModel(def);
    const w0 = initialWeights(this.model.layout, def.initSeed);
    this.variables = this.model.layout.blocks.map((b) =>
      tf.variable(tf.tensor(w0.subarray(b.offset, b.offset + b.size), b.shape, 'float32'), true),
    );
    this.optimizer = tf.train.sgd(bitsToFloat32(def.learningRate));
  }
  dispose(): void {
    void queue.then(() => {
      for (const v of this.variables) v.dispose();
      this.optimizer.dispose();
    });
  }
}

export function createPlainSgd(def: TaskDefinition, backend = tf.getBackend()): Promise<PlainSgdModel> {
  return exclusive(backend, () => new PlainSgdModel(def, backend));
}

/** One ordinary SGD step (w −= η·∇ mean loss), reading back loss and accuracy like a training loop. */
export async function plainSgdStep(
  m: PlainSgdModel,
  batch: Batch,
): Promise<{ loss: number; accuracy: number }> {
  const b = checkBatch(m.model.def, m.model.layout, batch);
  return exclusive(m.backend, async () => {
    const stats = tf.tidy(() => {
      const { x, labels, onehot } = batchTensors(m.model.def, m.model.layout, batch);
      let out: tf.Tensor2D | undefined;
      const cost = m.optimizer.minimize(
        () => {
          out = tf.keep(m.model.forward(x, m.variables));
          return tf.div(m.model.lossSum(out, onehot), b);
        },
        true,
        m.variables,
      )!;
      const s = tf.stack([cost, tf.div(correctCount(out!, labels), b)]);
      out!.dispose();
      return s;
    });
    try {
      const d = await stats.data();
      return { loss: d[0]!, accuracy: d[1]! };
    } finally {
      stats.dispose();
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Backend self-test and ladder (the platform modules supply the candidates and their probes).

/** The self-test task: 4 inputs, dense 4→3 softmax, cross-entropy; τ chosen far from every |g_j|. */
function selfTestTask(): TaskDefinition {
  return denseSoftmaxTask(4, 3, { initSeed: new Uint8Array(32).fill(7) }); // η 0.5, τ 0.25
}

/**
 * Runs the engine on `backend` against a gradient computed here in double precision (softmax
 * cross-entropy of a 4→3 dense layer at n = (3, −2, 0, …)), and checks a step's map, n, and a state
 * round trip. Returns the largest gradient error, or throws WorkError('BACKEND_UNAVAILABLE').
 */
export async function selfTestBackend(backend: string): Promise<{ maxError: number }> {
  const def = selfTestTask();
  const engine = await createTfjsEngine(def, { backend });
  try {
    const layout = engine.model.layout;
    const w0 = initialWeights(layout, def.initSeed);
    const n = new Int32Array(layout.parameterCount);
    n[0] = 3;
    n[1] = -2;
    n[13] = 1;
    const u = weightUnit(def);
    const w = Array.from(w0, (v, j) => v - u * n[j]!);
    const batch: Batch = {
      x: Float32Array.from([0.5, -1, 2, 0.25, -1.5, 0.75, 0, 1]),
      labels: Uint8Array.from([2, 0]),
    };
    // Expected gradient in double: dW[i][k] = Σ_b x_bi (p_bk − y_bk), db[k] = Σ_b (p_bk − y_bk).
    const expected = new Float64Array(layout.parameterCount);
    for (let b = 0; b < 2; b++) {
      const z = [0, 1, 2].map(
        (k) => w[12 + k]! + [0, 1, 2, 3].reduce((s, i) => s + batch.x[4 * b + i]! * w[3 * i + k]!, 0),
      );
      const mx = Math.max(...z);
      const e = z.map((v) => Math.exp(v - mx));
      const sum = e.reduce((a, c) => a + c, 0);
      for (let k = 0; k < 3; k++) {
        const d = e[k]! / sum - (batch.labels[b] === k ? 1 : 0);
        for (let i = 0; i < 4; i++) expected[3 * i + k]! += batch.x[4 * b + i]! * d;
        expected[12 + k]! += d;
      }
    }
    const got = await engine.gradient(n, batch);
    let maxError = 0;
    for (let j = 0; j < expected.length; j++)
      maxError = Math.max(maxError, Math.abs(got.gradient[j]! - expected[j]!));
    if (!(maxError < 1e-4))
      throw new WorkError(
        'BACKEND_UNAVAILABLE',
        `${backend}: self-test gradient off by ${maxError}`,
        'IGNORE',
        { backend },
      );
    // A step from (n, r = 0): the map is every |g_j| > τ, and n moves by it.
    await engine.setState(n);
    const { map } = await engine.step(batch);
    const tau = bitsToFloat32(def.tau);
    const want: number[] = [];
    for (let j = 0; j < expected.length; j++) {
      if (expected[j]! > tau) want.push((j | SIGN_BIT) >>> 0);
      else if (expected[j]! < -tau) want.push(j);
    }
    const st = await engine.state();
    const nWant = n.slice();
    for (const e of want) nWant[e & INDEX_MASK]! += (e & SIGN_BIT) !== 0 ? 1 : -1;
    if (want.length === 0 || map.join() !== want.join() || st.n.join() !== nWant.join()) {
      throw new WorkError(
        'BACKEND_UNAVAILABLE',
        `${backend}: self-test step produced a wrong map or n`,
        'IGNORE',
        { backend },
      );
    }
    return { maxError };
  } finally {
    engine.dispose();
  }
}

export type BackendName = 'webgpu' | 'webgl' | 'wasm' | 'cpu';

export interface BackendPreferences {
  /** Use this backend only (device-policy rules such as "no SwiftShader" are waived; correctness rules are not). */
  force?: BackendName;
  /** Candidate order, fastest first; default: the platform's ladder. */
  order?: BackendName[];
  /** Browser: where the TF.js .wasm files are served (a URL prefix ending in '/'). Node: a directory. */
  wasmPaths?: string;
  /** Use TF.js's threaded WASM build where the platform allows it (default false). */
  wasmThreads?: boolean;
}

export interface BackendChoice {
  backend: BackendName;
  /** The self-test's largest gradient error on the chosen backend. */
  selfTestError: number;
  /** Each candidate tried before the chosen one, and why it was skipped. */
  skipped: { backend: BackendName; reason: string }[];
}

/** A platform's verdict on a candidate before it is initialized: null = try it. */
export interface ProbeResult {
  reason: string;
  /** A correctness rule (e.g. no float32 render targets): applies even when the backend is forced. */
  fatal: boolean;
}

export interface LadderPlatform {
  ladder: BackendName[];
  /** Checks before initializing the backend (device policy, availability). */
  probe(name: BackendName): Promise<ProbeResult | null>;
  /** Checks after initializing it (e.g. WebGL float32 render targets). */
  verify?(name: BackendName): Promise<ProbeResult | null>;
}

/** Tries the candidates in order; the first that passes its probes and the self-test is made active. */
export async function runBackendLadder(
  platform: LadderPlatform,
  prefs: BackendPreferences = {},
): Promise<BackendChoice> {
  const forced = prefs.force !== undefined;
  const order = forced ? [prefs.force!] : (prefs.order ?? platform.ladder);
  const skipped: BackendChoice['skipped'] = [];
  for (const name of order) {
    try {
      if (tf.findBackendFactory(name) === null) {
        skipped.push({ backend: name, reason: 'not registered on this platform' });
        continue;
      }
      const pre = await platform.probe(name);
      if (pre !== null && (pre.fatal || !forced)) {
        skipped.push({ backend: name, reason: pre.reason });
        continue;
      }
      await exclusive(name, () => undefined); // initializes it, or throws BACKEND_UNAVAILABLE
      const post = (await platform.verify?.(name)) ?? null;
      if (post !== null && (post.fatal || !forced)) {
        skipped.push({ backend: name, reason: post.reason });
        continue;
      }
      const { maxError } = await selfTestBackend(name);
      await exclusive(name, () => undefined);
      return { backend: name, selfTestError: maxError, skipped };
    } catch (e) {
      skipped.push({ backend: name, reason: e instanceof Error ? e.message : String(e) });
    }
  }
  throw new WorkError(
    'BACKEND_UNAVAILABLE',
    `no usable TF.js backend: ${skipped.map((s) => `${s.backend} (${s.reason})`).join('; ')}`,
    'IGNORE',
    { skipped },
  );
}
