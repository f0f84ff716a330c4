/**
 * Main-thread side of the trainer worker: spawns trainer.worker.ts as a module worker and wraps its
 * engines as `TrainingEngine`s. Inputs (n, batches, maps) are copied into the worker (the caller keeps
 * its arrays); results come back transferred.
 */
import * as Comlink from 'comlink';
import type { Batch, GradientResult, LocalStepResult, TrainingEngine } from '../../shared/pouw/engine.ts';
import type { TaskDefinition } from '../../shared/pouw/task.ts';
import type { GpuInfo } from './backends-browser.ts';
import type { BackendChoice, BackendPreferences, TfjsEngineOptions } from './engine-tfjs.ts';
import type { EngineEndpoint, PlainSgdEndpoint, TrainerWorkerApi } from './trainer.worker.ts';

export class WorkerTrainingEngine implements TrainingEngine {
  constructor(
    private readonly remote: Comlink.Remote<EngineEndpoint>,
    readonly backend: string,
    readonly parameterCount: number,
  ) {}
  gradient(n: Int32Array, batch: Batch): Promise<GradientResult> {
    return this.remote.gradient(n, batch);
  }
  evaluate(n: Int32Array, batch: Batch): Promise<{ loss: number; accuracy: number }> {
    return this.remote.evaluate(n, batch);
  }
  setState(n: Int32Array, r?: Float32Array): Promise<void> {
    return this.remote.setState(n, r);
  }
  applyMap(map: Uint32Array): Promise<void> {
    return this.remote.applyMap(map);
  }
  step(batch: Batch, flush = false): Promise<LocalStepResult> {
    return this.remote.step(batch, flush);
  }
  flush(): Promise<Uint32Array> {
    return this.remote.flush();
  }
  state(): Promise<{ n: Int32Array; r: Float32Array }> {
    return this.remote.state();
  }
  dispose(): void {
    void this.remote.dispose().finally(() => this.remote[Comlink.releaseProxy]());
  }
}

export interface TrainerWorker {
  readonly worker: Worker;
  readonly api: Comlink.Remote<TrainerWorkerApi>;
  selectBackend(prefs?: BackendPreferences): Promise<BackendChoice>;
  describeGpu(): Promise<GpuInfo>;
  createEngine(def: TaskDefinition, options?: TfjsEngineOptions): Promise<WorkerTrainingEngine>;
  createPlainSgd(def: TaskDefinition, backend?: string): Promise<Comlink.Remote<PlainSgdEndpoint>>;
  terminate(): void;
}

/**
 * Spawns the trainer worker. `url` defaults to trainer.worker.ts next to this module (the form Vite
 * and the test runner's esbuild plugin bundle on the fly); pass a built worker's URL otherwise.
 */
export function spawnTrainerWorker(
  url: string | URL = new URL('./trainer.worker.ts', import.meta.url),
): TrainerWorker {
  const worker = new Worker(url, { type: 'module', name: 'pouw-trainer' });
  const api = Comlink.wrap<TrainerWorkerApi>(worker);
  return {
    worker,
    api,
    selectBackend: (prefs = {}) => api.selectBackend(prefs),
    describeGpu: () => api.describeGpu(),
    async createEngine(def, options = {}) {
      const remote = (await api.createEngine(def, options)) as unknown as Comlink.Remote<EngineEndpoint>;
      const { backend, parameterCount } = await remote.info();
      return new WorkerTrainingEngine(remote, backend, parameterCount);
    },
    createPlainSgd: (def, backend) =>
      api.createPlainSgd(def, backend) as unknown as Promise<Comlink.Remote<PlainSgdEndpoint>>,
    terminate() {
      api[Comlink.releaseProxy]();
      worker.terminate();
    },
  };
}
