/**
 * The residual pass of one iteration (residual.ts `thresholdInto` over all |M| weights) as a
 * WebAssembly SIMD kernel: four weights per instruction instead of one JS iteration each. On the
 * MNIST MLP (|M| = 109,386) the JS pass costs about a tenth of a wasm training step; this is the
 * engines' fast path where WebAssembly SIMD exists (Node, Chromium, Firefox, Safari ≥ 16.4), with
 * the JS pass as the fallback and the reference (tested bit for bit against it).
 *
 * Exactness: per weight, v = r + g is one IEEE float32 addition (f32x4.add, round to nearest even,
 * subnormals kept: WebAssembly has no flush-to-zero), the decisions are the comparisons v > θ and
 * v < −θ (NaN fails both), and r = v − d with d = τ, −τ or +0 is one float32 subtraction: exactly
 * v − τ, v + τ, or v itself (−0 and ±∞ included). Only a NaN's payload bits may differ from JS.
 *
 * The module is assembled here from its instructions (no binary blob): one exported function
 *   threshold(r, g, out, groups, θ, τ) → k
 * over `groups` groups of four floats at byte offsets r and g of its own memory, writing the k
 * encoded map entries (bit 31 = +1, bits 30..0 = index, ascending) from byte offset `out`.
 */

import { WorkError } from '../errors.ts';

/** Little-endian base-128 (unsigned). */
function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

/** Little-endian base-128 (signed, 32-bit). */
function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

function section(id: number, body: number[]): number[] {
  return [id, ...uleb(body.length), ...body];
}

function name(s: string): number[] {
  const bytes = Array.from(new TextEncoder().encode(s));
  return [...uleb(bytes.length), ...bytes];
}

// Value types and instructions used below (WebAssembly 2.0 binary format).
const I32 = 0x7f;
const F32 = 0x7d;
const V128 = 0x7b;
const VOID = 0x40;
const op = {
  block: 0x02,
  loop: 0x03,
  if: 0x04,
  else: 0x05,
  end: 0x0b,
  br: 0x0c,
  brIf: 0x0d,
  localGet: 0x20,
  localSet: 0x21,
  i32Store: 0x36,
  i32Const: 0x41,
  i32GeU: 0x4f,
  i32Add: 0x6a,
  i32Shl: 0x74,
  i32Or: 0x72,
  f32Neg: 0x8c,
} as const;
const simd = {
  load: 0x00,
  store: 0x0b,
  f32x4Splat: 0x13,
  i32x4ExtractLane: 0x1b,
  f32x4Lt: 0x43,
  f32x4Gt: 0x44,
  and: 0x4e,
  or: 0x50,
  anyTrue: 0x53,
  f32x4Add: 0xe4,
  f32x4Sub: 0xe5,
} as const;
const v = (code: number) => [0xfd, ...uleb(code)];
/** memarg: alignment exponent, offset 0. */
const mem = (alignLog2: number) => [alignLog2, 0];

// Parameters and locals of `threshold`.
const R = 0;
const G = 1;
const OUT = 2;
const GROUPS = 3;
const THETA = 4;
const TAU = 5;
const I = 6; // group index
const K = 7; // entries written
const J = 8; // flat index of the group's first weight
const P = 9; // byte offset of the group
const VAL = 10; // v128: v = r + g
const GT = 11; // v128: v > θ
const LT = 12; // v128: v < −θ
const THETAV = 13;
const NTHETAV = 14;
const TAUV = 15;
const NTAUV = 16;

/** out[k++] = the i32 that `entry` pushes. */
function emit(entry: number[]): number[] {
  return [
    op.localGet,
    OUT,
    op.localGet,
    K,
    op.i32Const,
    ...sleb(2),
    op.i32Shl,
    op.i32Add,
    ...entry,
    op.i32Store,
    ...mem(2),
    op.localGet,
    K,
    op.i32Const,
    ...sleb(1),
    op.i32Add,
    op.localSet,
    K,
  ];
}

/** For one lane: if gt → out += (j + lane) | 2^31; else if lt → out += j + lane. */
function lane(l: number): number[] {
  const index = [op.localGet, J, op.i32Const, ...sleb(l), op.i32Add];
  return [
    op.localGet,
    GT,
    ...v(simd.i32x4ExtractLane),
    l,
    op.if,
    VOID,
    ...emit([...index, op.i32Const, ...sleb(-0x80000000), op.i32Or]),
    op.else,
    op.localGet,
    LT,
    ...v(simd.i32x4ExtractLane),
    l,
    op.if,
    VOID,
    ...emit(index),
    op.end,
    op.end,
  ];
}

function thresholdBody(): number[] {
  const splat = (src: number[], dst: number) => [...src, ...v(simd.f32x4Splat), op.localSet, dst];
  const code = [
    ...splat([op.localGet, THETA], THETAV),
    ...splat([op.localGet, THETA, op.f32Neg], NTHETAV),
    ...splat([op.localGet, TAU], TAUV),
    ...splat([op.localGet, TAU, op.f32Neg], NTAUV),
    op.block,
    VOID,
    op.loop,
    VOID,
    // while (i < groups)
    op.localGet,
    I,
    op.localGet,
    GROUPS,
    op.i32GeU,
    op.brIf,
    1,
    // p = i << 4; v = r[p] + g[p]
    op.localGet,
    I,
    op.i32Const,
    ...sleb(4),
    op.i32Shl,
    op.localSet,
    P,
    op.localGet,
    R,
    op.localGet,
    P,
    op.i32Add,
    ...v(simd.load),
    ...mem(4),
    op.localGet,
    G,
    op.localGet,
    P,
    op.i32Add,
    ...v(simd.load),
    ...mem(4),
    ...v(simd.f32x4Add),
    op.localSet,
    VAL,
    // gt = v > θ; lt = v < −θ
    op.localGet,
    VAL,
    op.localGet,
    THETAV,
    ...v(simd.f32x4Gt),
    op.localSet,
    GT,
    op.localGet,
    VAL,
    op.localGet,
    NTHETAV,
    ...v(simd.f32x4Lt),
    op.localSet,
    LT,
    // r[p] = v − ((gt & τ) | (lt & −τ))
    op.localGet,
    R,
    op.localGet,
    P,
    op.i32Add,
    op.localGet,
    VAL,
    op.localGet,
    GT,
    op.localGet,
    TAUV,
    ...v(simd.and),
    op.localGet,
    LT,
    op.localGet,
    NTAUV,
    ...v(simd.and),
    ...v(simd.or),
    ...v(simd.f32x4Sub),
    ...v(simd.store),
    ...mem(4),
    // Any decision in this group: write its entries in lane order (ascending indices).
    op.localGet,
    GT,
    op.localGet,
    LT,
    ...v(simd.or),
    ...v(simd.anyTrue),
    op.if,
    VOID,
    op.localGet,
    I,
    op.i32Const,
    ...sleb(2),
    op.i32Shl,
    op.localSet,
    J,
    ...lane(0),
    ...lane(1),
    ...lane(2),
    ...lane(3),
    op.end,
    // i++
    op.localGet,
    I,
    op.i32Const,
    ...sleb(1),
    op.i32Add,
    op.localSet,
    I,
    op.br,
    0,
    op.end,
    op.end,
    op.localGet,
    K,
    op.end,
  ];
  // Locals after the 6 parameters: 4 i32 (i, k, j, p), 7 v128.
  const locals = [2, ...uleb(4), I32, ...uleb(7), V128];
  const body = [...locals, ...code];
  return [...uleb(body.length), ...body];
}

/** The module bytes, with a memory of `pages` 64 KiB pages. */
export function thresholdModuleBytes(pages: number): Uint8Array<ArrayBuffer> {
  const type = section(1, [1, 0x60, 6, I32, I32, I32, I32, F32, F32, 1, I32]);
  const func = section(3, [1, 0]);
  const memory = section(5, [1, 0x00, ...uleb(pages)]);
  const exports = section(7, [2, ...name('threshold'), 0x00, 0, ...name('memory'), 0x02, 0]);
  const code = section(10, [1, ...thresholdBody()]);
  return Uint8Array.from([
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...type,
    ...func,
    ...memory,
    ...exports,
    ...code,
  ]);
}

/** The residual r (persistent), the gradient input g and the map output, in the kernel's memory. */
export interface SimdThreshold {
  /** r, |M| floats (the engine's residual lives here). */
  readonly r: Float32Array;
  /** Where the caller writes this step's gradient, |M| floats. */
  readonly g: Float32Array;
  /**
   * v = r + g for every weight, threshold at `threshold` (τ, or τ/2 when flushing), r = v ∓ τ for
   * the map's entries; returns the map (ascending, a copy). g is left as it was.
   */
  run(tau: number, threshold: number): Uint32Array;
}

/**
 * A kernel for |M| = `parameterCount` weights, or undefined where WebAssembly SIMD is missing (the
 * caller then runs residual.ts `thresholdInto`). Compiled synchronously: the module is ~400 bytes.
 */
export function createSimdThreshold(parameterCount: number): SimdThreshold | undefined {
  if (typeof WebAssembly !== 'object') return undefined;
  // r and g padded to whole groups of four (the padding stays 0: v = 0 never crosses θ > 0, and
  // θ ≥ τ/2 > 0 for every valid task).
  const padded = Math.ceil(parameterCount / 4) * 4;
  const bytes = 4 * (3 * padded);
  const pages = Math.ceil(bytes / 65536);
  const module = thresholdModuleBytes(pages);
  if (!WebAssembly.validate(module)) return undefined;
  const instance = new WebAssembly.Instance(new WebAssembly.Module(module));
  const memory = instance.exports['memory'] as WebAssembly.Memory;
  const threshold = instance.exports['threshold'] as (
    r: number,
    g: number,
    out: number,
    groups: number,
    theta: number,
    tau: number,
  ) => number;
  // The memory never grows (no memory.grow in the module), so these views stay valid.
  const r = new Float32Array(memory.buffer, 0, parameterCount);
  const g = new Float32Array(memory.buffer, 4 * padded, parameterCount);
  const out = new Uint32Array(memory.buffer, 8 * padded, parameterCount);
  return {
    r,
    g,
    run(tau, theta) {
      if (!(theta > 0 && tau > 0))
        throw new WorkError('TASK_INVALID', `threshold ${theta} and τ ${tau} must be > 0`);
      const k = threshold(0, 4 * padded, 8 * padded, padded / 4, theta, tau);
      return out.slice(0, k);
    },
  };
}
