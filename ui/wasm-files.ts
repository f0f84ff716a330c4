/**
 * The TF.js .wasm binaries as Vite emits them (hashed file names under assets/): `?url` imports
 * give their final URLs, which the worker passes to setWasmPaths (trainer/backends-browser.ts
 * `configureWasmFiles`). The threaded build is listed but never loaded (threads are off).
 */
import wasmPlain from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm?url';
import wasmSimd from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm?url';
import wasmThreadedSimd from '@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-threaded-simd.wasm?url';
import type { WasmFileName } from '../web-worker-node/trainer/backends-browser.ts';

/** Absolute URLs (the worker resolves relative URLs against its own script, not the page). */
export function wasmFiles(base: string = document.baseURI): Record<WasmFileName, string> {
  return {
    'tfjs-backend-wasm.wasm': new URL(wasmPlain, base).href,
    'tfjs-backend-wasm-simd.wasm': new URL(wasmSimd, base).href,
    'tfjs-backend-wasm-threaded-simd.wasm': new URL(wasmThreadedSimd, base).href,
  };
}
