/**
 * TF.js backends in a page or Web Worker: webgpu, webgl, wasm, cpu (and tfjs-core's gradients,
 * which only the ES-module tree registers). The ladder (ADR 0008), fastest first:
 * - WebGPU only on a real GPU: an adapter that is a fallback adapter or names SwiftShader (or another
 *   software rasterizer) is skipped in favour of WASM, which is faster than emulated GPUs.
 * - WebGL only with float32 render targets (a backend that would compute in float16 must never mine;
 *   this rule holds even when WebGL is forced), and not on a software renderer (skipped like WebGPU).
 * - then WASM (SIMD; threads only when asked for and cross-origin isolated), then CPU.
 * Every candidate must also pass `selfTestBackend` (a known gradient and step) before it is chosen.
 */
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-webgl';
import '@tensorflow/tfjs-backend-webgpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import * as tf from '@tensorflow/tfjs-core';
import {
  type BackendChoice,
  type BackendName,
  type BackendPreferences,
  type LadderPlatform,
  type ProbeResult,
  runBackendLadder,
} from './engine-tfjs.ts';

export const BROWSER_LADDER: BackendName[] = ['webgpu', 'webgl', 'wasm', 'cpu'];

/** Software rasterizers: real enough for correctness, slower than WASM for training. */
const SOFTWARE = /swiftshader|llvmpipe|softpipe|software|microsoft basic render/i;

/** Where the dev servers (@web/test-runner, Vite dev) serve the TF.js .wasm files. */
export function defaultWasmPaths(): string {
  return `${globalThis.location.origin}/node_modules/@tensorflow/tfjs-backend-wasm/dist/`;
}

let wasmConfigured = false;

/** The TF.js .wasm binaries, by file name. */
export type WasmFileName =
  | 'tfjs-backend-wasm.wasm'
  | 'tfjs-backend-wasm-simd.wasm'
  | 'tfjs-backend-wasm-threaded-simd.wasm';

/**
 * Points the wasm backend at .wasm files a bundler emitted under hashed names (Vite `?url` imports),
 * once, before it initializes. The threaded build is off: a file map comes from a minifying build,
 * where TF.js's threaded glue breaks (ENVIRONMENT.md).
 */
export function configureWasmFiles(files: Partial<Record<WasmFileName, string>>): void {
  if (wasmConfigured) return;
  wasmConfigured = true;
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
  setWasmPaths(files);
}

/** Points the wasm backend at its .wasm files (once, before it initializes). */
export function configureWasmBrowser(
  prefs: Pick<BackendPreferences, 'wasmPaths' | 'wasmThreads'> = {},
): void {
  if (wasmConfigured) return;
  wasmConfigured = true;
  // The threaded build needs cross-origin isolation and breaks under minifying bundlers (ENVIRONMENT.md).
  tf.env().set(
    'WASM_HAS_MULTITHREAD_SUPPORT',
    prefs.wasmThreads === true && globalThis.crossOriginIsolated === true,
  );
  setWasmPaths(prefs.wasmPaths ?? defaultWasmPaths());
}

export interface GpuInfo {
  webgpu: { available: boolean; fallback?: boolean; description?: string };
  webgl: { available: boolean; renderer?: string };
}

async function webgpuAdapter(): Promise<{
  adapter: GPUAdapter | null;
  description: string;
  software: boolean;
}> {
  const gpu = (globalThis.navigator as Navigator | undefined)?.gpu;
  if (gpu === undefined) return { adapter: null, description: 'navigator.gpu missing', software: false };
  const adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
  if (adapter === null) return { adapter: null, description: 'no WebGPU adapter', software: false };
  const info = adapter.info as Partial<GPUAdapterInfo> | undefined;
  const legacyFallback = (adapter as unknown as { isFallbackAdapter?: boolean }).isFallbackAdapter === true;
  const description =
    [info?.vendor, info?.architecture, info?.device, info?.description].filter((s) => s).join(' ') ||
    'unnamed adapter';
  const software = legacyFallback || info?.isFallbackAdapter === true || SOFTWARE.test(description);
  return { adapter, description, software };
}

function webglRenderer(): string | null {
  let gl: WebGL2RenderingContext | WebGLRenderingContext | null = null;
  try {
    const canvas: OffscreenCanvas | HTMLCanvasElement =
      typeof OffscreenCanvas !== 'undefined' ? new OffscreenCanvas(1, 1) : document.createElement('canvas');
    gl = (canvas.getContext('webgl2') ?? canvas.getContext('webgl')) as
      | WebGL2RenderingContext
      | WebGLRenderingContext
      | null;
  } catch {
    return null;
  }
  if (gl === null) return null;
  const ext = gl.getExtension('WEBGL_debug_renderer_info');
  const renderer = String(gl.getParameter(ext === null ? gl.RENDERER : ext.UNMASKED_RENDERER_WEBGL));
  gl.getExtension('WEBGL_lose_context')?.loseContext();
  return renderer;
}

const browserPlatform: LadderPlatform = {
  ladder: BROWSER_LADDER,
  async probe(name): Promise<ProbeResult | null> {
    if (name === 'webgpu') {
      const { adapter, description, software } = await webgpuAdapter();
      if (adapter === null) return { reason: description, fatal: true };
      if (software)
        return { reason: `software WebGPU adapter (${description}): WASM is faster`, fatal: false };
      return null;
    }
    if (name === 'webgl') {
      const renderer = webglRenderer();
      if (renderer === null) return { reason: 'no WebGL context', fatal: true };
      if (SOFTWARE.test(renderer))
        return { reason: `software WebGL renderer (${renderer}): WASM is faster`, fatal: false };
      return null;
    }
    return null;
  },
  async verify(name): Promise<ProbeResult | null> {
    if (name === 'webgl' && !tf.env().getBool('WEBGL_RENDER_FLOAT32_ENABLED')) {
      return {
        reason: 'WebGL without float32 render targets (would compute in float16): never used for mining',
        fatal: true,
      };
    }
    return null;
  },
};

/** What the device offers, for the UI (does not initialize any TF.js backend). */
export async function describeGpu(): Promise<GpuInfo> {
  const gpu = await webgpuAdapter().catch(() => ({ adapter: null, description: 'error', software: false }));
  const renderer = webglRenderer();
  return {
    webgpu:
      gpu.adapter === null
        ? { available: false, description: gpu.description }
        : { available: true, fallback: gpu.software, description: gpu.description },
    webgl: renderer === null ? { available: false } : { available: true, renderer },
  };
}

/** Picks and activates the fastest working backend on this device; `force` picks one. */
export function selectBackend(prefs: BackendPreferences = {}): Promise<BackendChoice> {
  configureWasmBrowser(prefs);
  return runBackendLadder(browserPlatform, prefs);
}
