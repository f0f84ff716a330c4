/**
 * The engine a supervisor replays a task's iterations with (DESIGN §4.5; verification in
 * shared/pouw/verify.ts, ADR 0009):
 * - one dense softmax layer on flat inputs with cross-entropy (`denseSoftmaxTask`):
 *   `JsSoftmaxEngine`, pure JS in float64, no TF.js loaded;
 * - any other architecture (MLPs, conv nets): the TF.js engine of web-worker-node/trainer on the
 *   Node backend ladder (wasm, then cpu; `selectBackend` runs each candidate's self-test).
 * A miner may have trained on another backend (WebGPU, WebGL, wasm or cpu): the verifier's
 * tolerance band around τ absorbs the float differences between backends, so the supervisor need
 * not match the miner's backend.
 *
 * TF.js is imported on first use only, so a supervisor of softmax tasks never loads it; the
 * backend is chosen (and self-tested) once per engine, at its first replay.
 */
import type { Batch, GradientEngine } from '../shared/pouw/engine.ts';
import { JsSoftmaxEngine } from '../shared/pouw/js-engine.ts';
import { Activation, LayerKind, Loss, modelLayout, type TaskDefinition } from '../shared/pouw/task.ts';
import type { BackendPreferences } from '../web-worker-node/trainer/engine-tfjs.ts';

/** True for the tasks JsSoftmaxEngine computes exactly: one dense softmax layer on flat inputs, cross-entropy. */
export function isDenseSoftmaxTask(def: TaskDefinition): boolean {
  const layer = def.layers[0];
  return (
    def.layers.length === 1 &&
    def.inputShape.length === 1 &&
    layer?.kind === LayerKind.DENSE &&
    layer.activation === Activation.SOFTMAX &&
    def.loss === Loss.CROSS_ENTROPY
  );
}

/**
 * The replay engine for `definition`. `prefs` pins or orders the TF.js backends (tests; a
 * supervisor uses the ladder); it is ignored for softmax tasks.
 */
export function replayEngineFor(definition: TaskDefinition, prefs: BackendPreferences = {}): GradientEngine {
  if (isDenseSoftmaxTask(definition)) return new JsSoftmaxEngine(definition);
  return new TfjsReplayEngine(definition, prefs);
}

/** The TF.js engine behind a lazy start: backend selection and engine creation happen on first use. */
class TfjsReplayEngine implements GradientEngine {
  readonly parameterCount: number;
  readonly #definition: TaskDefinition;
  readonly #prefs: BackendPreferences;
  #engine: Promise<GradientEngine> | undefined;
  #backend = 'tfjs';
  #disposed = false;

  constructor(definition: TaskDefinition, prefs: BackendPreferences) {
    this.#definition = definition;
    this.#prefs = prefs;
    this.parameterCount = modelLayout(definition).parameterCount;
  }

  /** 'tfjs' until the first use, then the TF.js backend chosen ('wasm' or 'cpu'). */
  get backend(): string {
    return this.#backend;
  }

  #start(): Promise<GradientEngine> {
    this.#engine ??= (async () => {
      const { selectBackend } = await import('../web-worker-node/trainer/backends-node.ts');
      const { createTfjsEngine } = await import('../web-worker-node/trainer/engine-tfjs.ts');
      const choice = await selectBackend(this.#prefs);
      const engine = await createTfjsEngine(this.#definition, { backend: choice.backend });
      this.#backend = choice.backend;
      return engine;
    })().catch((e: unknown) => {
      // BACKEND_UNAVAILABLE and the like: the next replay tries again.
      this.#engine = undefined;
      throw e;
    });
    return this.#engine;
  }

  async gradient(n: Int32Array, batch: Batch) {
    return (await this.#start()).gradient(n, batch);
  }

  async evaluate(n: Int32Array, batch: Batch) {
    return (await this.#start()).evaluate(n, batch);
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#engine?.then(
      (e) => e.dispose(),
      () => {},
    );
  }
}
