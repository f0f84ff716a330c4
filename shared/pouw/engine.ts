/**
 * What the protocol needs from a training engine (TensorFlow.js on some backend, implemented in
 * web-worker-node/trainer/). The core never imports TensorFlow.js: miners, verifiers and tests get
 * an engine injected.
 */
export interface Batch {
  /** B × inputSize features, row-major. */
  x: Float32Array;
  /** B class labels. */
  labels: Uint8Array;
}

export interface GradientResult {
  /** Gradient of the batch-SUMMED loss, flat in the task's parameter layout (|M| floats). */
  gradient: Float32Array;
  /** Mean loss over the batch. */
  loss: number;
  /** Fraction of the batch classified correctly. */
  accuracy: number;
}

export interface LocalStepResult {
  /** Encoded update map (shared/pouw/residual.ts), already applied to the engine's n. */
  map: Uint32Array;
  loss: number;
  accuracy: number;
}

export interface GradientEngine {
  /** 'webgpu' | 'webgl' | 'wasm' | 'cpu' (the TF.js backend in use). */
  readonly backend: string;
  readonly parameterCount: number;
  /** Stateless: gradient at weights w0 − u·n on a batch (verifiers, tests). */
  gradient(n: Int32Array, batch: Batch): Promise<GradientResult>;
  /** Loss and accuracy at w0 − u·n over a set of examples. */
  evaluate(n: Int32Array, batch: Batch): Promise<{ loss: number; accuracy: number }>;
  dispose(): void;
}

/**
 * A miner's engine keeps n and the residual r on the device, so an iteration moves only the sparse
 * map off it. Semantics are exactly those of shared/pouw/residual.ts.
 */
export interface TrainingEngine extends GradientEngine {
  /** Loads state (n, and r; r defaults to zeros). */
  setState(n: Int32Array, r?: Float32Array): Promise<void>;
  /** n += map (peer updates). */
  applyMap(map: Uint32Array): Promise<void>;
  /**
   * One local step on the device: gradient at the current n, then `residualStep` semantics
   * (shared/pouw/residual.ts): r += g, threshold at τ — or, when `flush` is set (the last iteration
   * of a segment), at τ/2 followed by r = 0 — and n += map.
   */
  step(batch: Batch, flush?: boolean): Promise<LocalStepResult>;
  /** Flush without a gradient: |r| > τ/2 into the map, n += map, r = 0 (used when a miner stops). */
  flush(): Promise<Uint32Array>;
  /** Downloads the current n and r. */
  state(): Promise<{ n: Int32Array; r: Float32Array }>;
}
