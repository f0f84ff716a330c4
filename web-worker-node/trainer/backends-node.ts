/**
 * TF.js backends under Node (edge volunteers, verifiers, tests): cpu and wasm. The .wasm files are
 * read from node_modules/@tensorflow/tfjs-backend-wasm/dist through setWasmPaths with a directory
 * path; the threaded WASM build is off (it would need worker_threads glue; the single-threaded SIMD
 * build is what every Node test measured). Ladder: wasm, then cpu.
 *
 * Gradients: tfjs-core registers its gradient functions only from its ES-module tree
 * (dist/register_all_gradients.js, normally pulled in by the `@tensorflow/tfjs` union package), and
 * Node's CommonJS build (dist/tf-core.node.js) lacks them. That tree uses extensionless relative
 * imports, which Node's ES-module resolver refuses, so a resolve hook scoped to tfjs-core's dist/
 * adds the `.js`. The two module instances share one engine and one gradient registry (TF.js keeps
 * both on globalThis for exactly this case), so the gradients registered here serve every op.
 */
import { createRequire, registerHooks } from 'node:module';
import { dirname, join } from 'node:path';
import '@tensorflow/tfjs-backend-cpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import {
  type BackendChoice,
  type BackendName,
  type BackendPreferences,
  type LadderPlatform,
  runBackendLadder,
} from './engine-tfjs.ts';

registerHooks({
  resolve(specifier, context, nextResolve) {
    if (
      context.parentURL?.includes('/@tensorflow/tfjs-core/dist/') &&
      specifier.startsWith('.') &&
      !specifier.endsWith('.js')
    ) {
      return nextResolve(`${specifier}.js`, context);
    }
    return nextResolve(specifier, context);
  },
});
await import('@tensorflow/tfjs-core/dist/register_all_gradients.js');

export const NODE_LADDER: BackendName[] = ['wasm', 'cpu'];

let wasmConfigured = false;

/** Points the wasm backend at its .wasm files (once, before it initializes). */
export function configureWasmNode(prefs: Pick<BackendPreferences, 'wasmPaths' | 'wasmThreads'> = {}): void {
  if (wasmConfigured) return;
  wasmConfigured = true;
  const dir =
    prefs.wasmPaths ??
    join(
      dirname(createRequire(import.meta.url).resolve('@tensorflow/tfjs-backend-wasm/package.json')),
      'dist/',
    );
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', prefs.wasmThreads === true);
  setWasmPaths(dir.endsWith('/') ? dir : `${dir}/`);
}

const nodePlatform: LadderPlatform = {
  ladder: NODE_LADDER,
  async probe(name) {
    if (name === 'webgpu' || name === 'webgl') return { reason: 'no GPU backend under Node', fatal: true };
    return null;
  },
};

/** Picks and activates the fastest working backend (wasm, else cpu); `force` picks one. */
export function selectBackend(prefs: BackendPreferences = {}): Promise<BackendChoice> {
  configureWasmNode(prefs);
  return runBackendLadder(nodePlatform, prefs);
}
