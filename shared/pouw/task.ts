/**
 * Task definitions (DESIGN §4.4): the model architecture, the seed of its initial weights, the loss
 * and every training and mining parameter. Its hash is the task id. `validateTask` rejects a bad
 * definition with a typed error before anything runs, and `modelLayout` derives the flat parameter
 * layout every node indexes update maps by.
 * Floats (η, τ) travel as IEEE-754 float32 bit patterns so the definition hashes identically everywhere.
 */
import {
  ByteVectorType,
  ContainerType,
  ListBasicType,
  ListCompositeType,
  UintNumberType,
} from '@chainsafe/ssz';
import { type CodecValue, defineCodec } from '../codec/codec.ts';
import { taggedHash } from '../codec/domain.ts';
import { WorkError } from '../errors.ts';

const uint8 = new UintNumberType(1);
const uint16 = new UintNumberType(2);
const uint32 = new UintNumberType(4);

export const LayerKind = { DENSE: 0, CONV2D: 1, MAX_POOL2D: 2, FLATTEN: 3 } as const;
export type LayerKind = (typeof LayerKind)[keyof typeof LayerKind];
export const Activation = { LINEAR: 0, RELU: 1, TANH: 2, SOFTMAX: 3 } as const;
export type Activation = (typeof Activation)[keyof typeof Activation];
export const Padding = { VALID: 0, SAME: 1 } as const;
export const Loss = { CROSS_ENTROPY: 0, MSE: 1 } as const;
export type Loss = (typeof Loss)[keyof typeof Loss];

export const Layer = defineCodec(
  'Layer',
  new ContainerType({
    kind: uint8,
    /** DENSE: output units. CONV2D: filters. Otherwise 0. */
    units: uint32,
    /** CONV2D and MAX_POOL2D: square kernel / pool size. Otherwise 0. */
    kernelSize: uint8,
    /** CONV2D and MAX_POOL2D: stride. Otherwise 0. */
    stride: uint8,
    padding: uint8,
    activation: uint8,
  }),
);
export type Layer = CodecValue<typeof Layer>;

export const MAX_LAYERS = 16;

export const TaskDefinition = defineCodec(
  'TaskDefinition',
  new ContainerType({
    version: uint8,
    /** [features] for dense inputs, [height, width, channels] for images. */
    inputShape: new ListBasicType(uint16, 3),
    numClasses: uint16,
    layers: new ListCompositeType(Layer.ssz, MAX_LAYERS),
    loss: uint8,
    /** Seed of the initial weights (shared/pouw/init.ts). */
    initSeed: new ByteVectorType(32),
    /** SGD learning rate η, float32 bits. */
    learningRate: uint32,
    /** Residual threshold τ, float32 bits. */
    tau: uint32,
    batchSize: uint32,
    /** ZNB lead k: a template committed in IT_RES i is mined with at iteration i + k. */
    znbLead: uint16,
    /** Residual segment length R: the residual is flushed and reset every R iterations. */
    segmentLength: uint16,
    /** Nonce coefficients, parts per million: a = ω_B·β/10^6 + ω_M·|M|/10^6. */
    omegaBPpm: uint32,
    omegaMPpm: uint32,
    epochs: uint16,
    /** Root over the dataset's segment hashes (the client's commitment). */
    datasetCommitment: new ByteVectorType(32),
    /** Number of training examples (sets the batch schedule). */
    trainSize: uint32,
  }),
);
export type TaskDefinition = CodecValue<typeof TaskDefinition>;

export const TASK_VERSION = 1;
/** Flat weight indices must fit the 31 index bits of a map entry. */
export const MAX_PARAMETERS = 2 ** 31 - 1;

/** The task id: tagged hash of the canonical definition. */
export function taskId(chainId: string, def: TaskDefinition): Uint8Array {
  return taggedHash('pouw/task/v1', chainId, TaskDefinition.encode(def));
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
export function float32Bits(x: number): number {
  f32[0] = x;
  return u32[0]!;
}
export function bitsToFloat32(bits: number): number {
  u32[0] = bits >>> 0;
  return f32[0]!;
}

/** Where one layer's parameters sit in the flat vector (kernel first, then bias). */
export interface ParameterBlock {
  layer: number;
  name: 'kernel' | 'bias';
  offset: number;
  size: number;
  /** TensorFlow.js layout: dense [in, out]; conv2d [kh, kw, inC, outC]; bias [units]. */
  shape: number[];
  /** Fan in / fan out, for the Glorot-uniform initializer (kernels only). */
  fanIn: number;
  fanOut: number;
}

export interface ModelLayout {
  /** Output shape of each layer (without the batch dimension). */
  shapes: number[][];
  blocks: ParameterBlock[];
  /** |M|: total number of weights. */
  parameterCount: number;
  inputSize: number;
}

function invalid(message: string, detail: Record<string, unknown> = {}): never {
  throw new WorkError('TASK_INVALID', message, 'REJECT', detail);
}

function convOut(size: number, kernel: number, stride: number, padding: number): number {
  return padding === Padding.SAME ? Math.ceil(size / stride) : Math.floor((size - kernel) / stride) + 1;
}

/** Derives shapes and the flat parameter layout; throws TASK_INVALID for any inconsistency. */
export function modelLayout(def: Pick<TaskDefinition, 'inputShape' | 'layers' | 'numClasses'>): ModelLayout {
  let shape = [...def.inputShape];
  if (shape.length === 0 || shape.some((d) => d < 1))
    invalid('inputShape must have 1 to 3 positive dimensions');
  const inputSize = shape.reduce((a, b) => a * b, 1);
  const shapes: number[][] = [];
  const blocks: ParameterBlock[] = [];
  let offset = 0;
  def.layers.forEach((l, i) => {
    const at = { layer: i };
    switch (l.kind) {
      case LayerKind.DENSE: {
        if (shape.length !== 1) invalid(`layer ${i}: dense needs a flat input (add a flatten layer)`, at);
        if (l.units < 1) invalid(`layer ${i}: dense needs units ≥ 1`, at);
        if (l.kernelSize !== 0 || l.stride !== 0 || l.padding !== 0)
          invalid(`layer ${i}: dense takes no kernel, stride or padding`, at);
        const inSize = shape[0]!;
        blocks.push({
          layer: i,
          name: 'kernel',
          offset,
          size: inSize * l.units,
          shape: [inSize, l.units],
          fanIn: inSize,
          fanOut: l.units,
        });
        offset += inSize * l.units;
        blocks.push({ layer: i, name: 'bias', offset, size: l.units, shape: [l.units], fanIn: 0, fanOut: 0 });
        offset += l.units;
        shape = [l.units];
        break;
      }
      case LayerKind.CONV2D: {
        if (shape.length !== 3) invalid(`layer ${i}: conv2d needs a [height, width, channels] input`, at);
        if (l.units < 1 || l.kernelSize < 1 || l.stride < 1 || l.padding > 1)
          invalid(`layer ${i}: conv2d needs filters, kernel and stride ≥ 1`, at);
        const [h, w, c] = shape as [number, number, number];
        if (l.padding === Padding.VALID && (l.kernelSize > h || l.kernelSize > w))
          invalid(`layer ${i}: kernel larger than its input`, at);
        const size = l.kernelSize * l.kernelSize * c * l.units;
        blocks.push({
          layer: i,
          name: 'kernel',
          offset,
          size,
          shape: [l.kernelSize, l.kernelSize, c, l.units],
          fanIn: l.kernelSize * l.kernelSize * c,
          fanOut: l.kernelSize * l.kernelSize * l.units,
        });
        offset += size;
        blocks.push({ layer: i, name: 'bias', offset, size: l.units, shape: [l.units], fanIn: 0, fanOut: 0 });
        offset += l.units;
        shape = [
          convOut(h, l.kernelSize, l.stride, l.padding),
          convOut(w, l.kernelSize, l.stride, l.padding),
          l.units,
        ];
        break;
      }
      case LayerKind.MAX_POOL2D: {
        if (shape.length !== 3) invalid(`layer ${i}: max-pool needs a [height, width, channels] input`, at);
        if (l.units !== 0 || l.kernelSize < 1 || l.stride < 1 || l.padding > 1)
          invalid(`layer ${i}: max-pool needs pool size and stride ≥ 1`, at);
        if (l.activation !== Activation.LINEAR) invalid(`layer ${i}: max-pool has no activation`, at);
        const [h, w, c] = shape as [number, number, number];
        if (l.padding === Padding.VALID && (l.kernelSize > h || l.kernelSize > w))
          invalid(`layer ${i}: pool larger than its input`, at);
        shape = [
          convOut(h, l.kernelSize, l.stride, l.padding),
          convOut(w, l.kernelSize, l.stride, l.padding),
          c,
        ];
        break;
      }
      case LayerKind.FLATTEN: {
        if (l.units !== 0 || l.kernelSize !== 0 || l.stride !== 0 || l.padding !== 0 || l.activation !== 0)
          invalid(`layer ${i}: flatten takes no parameters`, at);
        shape = [shape.reduce((a, b) => a * b, 1)];
        break;
      }
      default:
        invalid(`layer ${i}: unknown kind ${l.kind}`, at);
    }
    if (l.activation > Activation.SOFTMAX) invalid(`layer ${i}: unknown activation ${l.activation}`, at);
    if (l.activation === Activation.SOFTMAX && i !== def.layers.length - 1)
      invalid(`layer ${i}: softmax only on the last layer`, at);
    if (shape.some((d) => d < 1)) invalid(`layer ${i}: output shape collapses to zero`, at);
    if (offset > MAX_PARAMETERS) invalid('more than 2^31 − 1 parameters: map indices would not fit');
    shapes.push(shape);
  });
  if (def.layers.length === 0) invalid('no layers');
  const out = shapes[shapes.length - 1]!;
  if (out.length !== 1 || out[0] !== def.numClasses)
    invalid(`the last layer must output numClasses = ${def.numClasses} values`);
  if (offset === 0) invalid('the model has no parameters');
  return { shapes, blocks, parameterCount: offset, inputSize };
}

/** Full validation of a definition; returns its layout. Throws WorkError('TASK_INVALID'). */
export function validateTask(def: TaskDefinition): ModelLayout {
  if (def.version !== TASK_VERSION) invalid(`version ${def.version}, expected ${TASK_VERSION}`);
  if (def.numClasses < 2) invalid('numClasses must be at least 2');
  const layout = modelLayout(def);
  const last = def.layers[def.layers.length - 1]!;
  if (def.loss === Loss.CROSS_ENTROPY) {
    if (last.activation !== Activation.SOFTMAX) invalid('cross-entropy needs a softmax last layer');
  } else if (def.loss !== Loss.MSE) invalid(`unknown loss ${def.loss}`);
  const eta = bitsToFloat32(def.learningRate);
  const tau = bitsToFloat32(def.tau);
  if (!Number.isFinite(eta) || eta <= 0) invalid('learning rate must be a positive finite float');
  if (!Number.isFinite(tau) || tau <= 0) invalid('τ must be a positive finite float');
  if (!Number.isFinite(weightUnit(def)) || weightUnit(def) === 0) invalid('η·τ/B underflows or overflows');
  if (def.batchSize < 1) invalid('batch size must be at least 1');
  if (def.trainSize < def.batchSize) invalid('fewer training examples than one batch');
  if (def.znbLead < 1) invalid('ZNB lead k must be at least 1');
  if (def.segmentLength < 1) invalid('segment length R must be at least 1');
  if (def.epochs < 1) invalid('epochs must be at least 1');
  return layout;
}

/** u = η·τ/B: the weight change one lattice step makes (float32). */
export function weightUnit(def: Pick<TaskDefinition, 'learningRate' | 'tau' | 'batchSize'>): number {
  return Math.fround((bitsToFloat32(def.learningRate) * bitsToFloat32(def.tau)) / def.batchSize);
}

/** Batches per epoch (the last partial batch is dropped so every batch has B examples). */
export function batchesPerEpoch(def: Pick<TaskDefinition, 'trainSize' | 'batchSize'>): number {
  return Math.floor(def.trainSize / def.batchSize);
}

/**
 * The smallest valid task: one dense softmax layer on flat inputs, cross-entropy (engine self-tests
 * and unit tests). Every field can be overridden.
 */
export function denseSoftmaxTask(
  inputs: number,
  classes: number,
  overrides: Partial<TaskDefinition> = {},
): TaskDefinition {
  return {
    version: TASK_VERSION,
    inputShape: [inputs],
    numClasses: classes,
    layers: [
      {
        kind: LayerKind.DENSE,
        units: classes,
        kernelSize: 0,
        stride: 0,
        padding: 0,
        activation: Activation.SOFTMAX,
      },
    ],
    loss: Loss.CROSS_ENTROPY,
    initSeed: new Uint8Array(32),
    learningRate: float32Bits(0.5),
    tau: float32Bits(0.25),
    batchSize: 2,
    znbLead: 1,
    segmentLength: 1,
    omegaBPpm: 0,
    omegaMPpm: 0,
    epochs: 1,
    datasetCommitment: new Uint8Array(32),
    trainSize: 2,
    ...overrides,
  };
}

/** The paper's FC-DNN for MNIST: 784-128-64-10, ReLU, softmax, cross-entropy. */
export function mnistMlpTask(overrides: Partial<TaskDefinition> = {}): TaskDefinition {
  const dense = (units: number, activation: number): Layer => ({
    kind: LayerKind.DENSE,
    units,
    kernelSize: 0,
    stride: 0,
    padding: 0,
    activation,
  });
  return {
    version: TASK_VERSION,
    inputShape: [784],
    numClasses: 10,
    layers: [dense(128, Activation.RELU), dense(64, Activation.RELU), dense(10, Activation.SOFTMAX)],
    loss: Loss.CROSS_ENTROPY,
    initSeed: new Uint8Array(32).fill(0x42),
    learningRate: float32Bits(0.1),
    tau: float32Bits(0.01),
    batchSize: 100,
    znbLead: 5,
    segmentLength: 10,
    omegaBPpm: 10_000,
    omegaMPpm: 10_000,
    epochs: 5,
    datasetCommitment: new Uint8Array(32),
    trainSize: 8000,
    ...overrides,
  };
}
