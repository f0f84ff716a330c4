/**
 * The WebAssembly SIMD residual pass against its JS reference (residual.ts `thresholdInto`), in
 * Node and Chromium: maps and residuals bit for bit over random steps and flushes, and on the edge
 * values (exactly ±θ, ±0, subnormals, ±∞, NaN), for lengths that are not multiples of four.
 */
import { assert, describe, it } from '#test';
import { SeededStream } from './init.ts';
import { thresholdInto } from './residual.ts';
import { createSimdThreshold, thresholdModuleBytes } from './threshold-simd.ts';

const fill = (v: number) => new Uint8Array(32).fill(v);

/** Same float, NaN as NaN (WebAssembly may change a NaN's payload bits, nothing else). */
function sameFloats(a: Float32Array, b: Float32Array, label: string): void {
  assert.equal(a.length, b.length);
  for (let j = 0; j < a.length; j++) {
    if (!(Object.is(a[j], b[j]) || (Number.isNaN(a[j]) && Number.isNaN(b[j]))))
      assert.ok(false, `${label}: r[${j}] = ${b[j]}, reference ${a[j]}`);
  }
}

describe('residual pass, WebAssembly SIMD', () => {
  it('the module validates; this runtime has WebAssembly SIMD', () => {
    assert.ok(WebAssembly.validate(thresholdModuleBytes(1)));
    assert.ok(createSimdThreshold(10) !== undefined);
  });

  it('equals thresholdInto bit for bit over random steps and flushes', () => {
    for (const m of [1, 7, 4000, 4003]) {
      const kernel = createSimdThreshold(m)!;
      const r = new Float32Array(m);
      const out = new Uint32Array(m);
      const s = new SeededStream(fill(m & 0xff));
      const tau = Math.fround(0.37);
      for (let step = 0; step < 25; step++) {
        const g = Float32Array.from({ length: m }, () => ((s.nextUint32() / 2 ** 32) * 2 - 1) * 0.3);
        const flush = step % 6 === 5;
        const theta = flush ? tau / 2 : tau;
        const k = thresholdInto(r, 0, g, tau, theta, out, 0);
        kernel.g.set(g);
        const map = kernel.run(tau, theta);
        if (flush) {
          r.fill(0);
          kernel.r.fill(0);
        }
        assert.deepEqual(Array.from(map), Array.from(out.subarray(0, k)), `m=${m} step ${step}: map`);
        sameFloats(r, kernel.r, `m=${m} step ${step}`);
      }
    }
  });

  it('edge values: exactly ±θ stays, ±0, subnormals, ±∞ and NaN as in residual.ts', () => {
    const tau = 1;
    const sub = Math.fround(1e-45); // the smallest float32 subnormal, 2^-149
    const g = Float32Array.from([
      1,
      -1,
      Math.fround(1 + 2 ** -23),
      -Math.fround(1 + 2 ** -23),
      0,
      -0,
      sub,
      -sub,
      Number.POSITIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
      Number.NaN,
      0.5,
      0.75,
    ]);
    for (const theta of [1, 0.5]) {
      const kernel = createSimdThreshold(g.length)!;
      const r = Float32Array.from(g, (_, j) => (j === 11 ? 0.5 : j === 4 || j === 5 ? -0 : 0));
      kernel.r.set(r);
      kernel.g.set(g);
      const out = new Uint32Array(g.length);
      const k = thresholdInto(r, 0, g, tau, theta, out, 0);
      const map = kernel.run(tau, theta);
      assert.deepEqual(Array.from(map), Array.from(out.subarray(0, k)), `θ=${theta}: map`);
      sameFloats(r, kernel.r, `θ=${theta}`);
      assert.ok(!Array.from(map).some((e) => (e & 0x7fffffff) === 10), 'NaN never enters the map');
      assert.ok(Object.is(kernel.r[5], -0) && Object.is(kernel.r[7], -sub));
    }
  });

  it('rejects a non-positive threshold (every valid task has τ > 0)', () => {
    const kernel = createSimdThreshold(4)!;
    assert.throws(() => kernel.run(1, 0), { code: 'TASK_INVALID' });
    assert.throws(() => kernel.run(Number.NaN, 1), { code: 'TASK_INVALID' });
  });
});
