/**
 * The trainer Web Worker: TF.js (backend ladder of backends-browser.ts) behind comlink. The page
 * spawns it with worker-client.ts, picks a backend, and gets TrainingEngine proxies; typed arrays
 * coming back (gradients, maps, state) are transferred, not copied. Bundle-able by esbuild and Vite
 * (module worker, no Node built-ins).
 */

import * as tf from '@tensorflow/tfjs-core';
import * as Comlink from 'comlink';
import type { Batch, GradientResult, LocalStepResult } from '../../shared/pouw/engine.ts';
import type { TaskDefinition } from '../../shared/pouw/task.ts';
import { describeGpu, type GpuInfo, selectBackend } from './backends-browser.ts';
import {
  type BackendChoice,
  type BackendPreferences,
  createPlainSgd,
  createTfjsEngine,
  type PlainSgdModel,
  plainSgdStep,
  type TfjsEngineOptions,
  type TfjsTrainingEngine,
} from './engine-tfjs.ts';

/** One engine, as the worker exposes it (every method returns transferable results). */
export class EngineEndpoint {
  constructor(private readonly engine: TfjsTrainingEngine) {}
  info(): { backend: string; parameterCount: number } {
    return { backend: this.engine.backend, parameterCount: this.engine.parameterCount };
  }
  async gradient(n: Int32Array, batch: Batch): Promise<GradientResult> {
    const g = await this.engine.gradient(n, batch);
    return Comlink.transfer(g, [g.gradient.buffer]);
  }
  evaluate(n: Int32Array, batch: Batch): Promise<{ loss: number; accuracy: number }> {
    return this.engine.evaluate(n, batch);
  }
  setState(n: Int32Array, r?: Float32Array): Promise<void> {
    return this.engine.setState(n, r);
  }
  applyMap(map: Uint32Array): Promise<void> {
    return this.engine.applyMap(map);
  }
  async step(batch: Batch, flush = false): Promise<LocalStepResult> {
    const s = await this.engine.step(batch, flush);
    return Comlink.transfer(s, [s.map.buffer]);
  }
  async flush(): Promise<Uint32Array> {
    const map = await this.engine.flush();
    return Comlink.transfer(map, [map.buffer]);
  }
  async state(): Promise<{ n: Int32Array; r: Float32Array }> {
    const s = await this.engine.state();
    return Comlink.transfer(s, [s.n.buffer, s.r.buffer]);
  }
  dispose(): void {
    this.engine.dispose();
  }
}

/** The plain TF.js baseline (benchmarks only). */
export class PlainSgdEndpoint {
  constructor(private readonly model: PlainSgdModel) {}
  step(batch: Batch): Promise<{ loss: number; accuracy: number }> {
    return plainSgdStep(this.model, batch);
  }
  dispose(): void {
    this.model.dispose();
  }
}

const api = {
  /** Runs the backend ladder (or forces one) and makes the choice the worker's active backend. */
  selectBackend(prefs: BackendPreferences = {}): Promise<BackendChoice> {
    return selectBackend(prefs);
  },
  describeGpu(): Promise<GpuInfo> {
    return describeGpu();
  },
  /** An engine on the active backend (or `options.backend`, which must have been selected). */
  async createEngine(def: TaskDefinition, options: TfjsEngineOptions = {}): Promise<EngineEndpoint> {
    return Comlink.proxy(new EngineEndpoint(await createTfjsEngine(def, options)));
  },
  async createPlainSgd(def: TaskDefinition, backend?: string): Promise<PlainSgdEndpoint> {
    return Comlink.proxy(new PlainSgdEndpoint(await createPlainSgd(def, backend)));
  },
  /** tf.memory() of the worker (leak checks). */
  memory(): { numTensors: number; numBytes: number } {
    const m = tf.memory();
    return { numTensors: m.numTensors, numBytes: m.numBytes };
  },
};

export type TrainerWorkerApi = typeof api;

Comlink.expose(api);
