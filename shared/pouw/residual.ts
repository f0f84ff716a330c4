/**
 * The lattice model state and the residual thresholding of Strom (2015), as the reference every
 * engine must match (DESIGN §4.4). Weight j is w0_j − u·n_j with u = η·τ/B and n an Int32 vector;
 * every update in the system is ±1 on some n_j.
 *
 * One local step: r += g (g summed over the batch); every j with |r_j| > τ enters the map with the
 * sign of r_j, r_j −= sign·τ, and n_j += sign (the weight moves by −sign·u, down the gradient).
 * Segments: iterations [sR, (s+1)R) form a segment; r is zero at its start. The last iteration of a
 * segment is a flush iteration: r += g, every j with |r_j| > τ/2 enters the map (±1, n_j += sign) and
 * r resets to zero. (That is exactly "a normal step, then flush what is left above τ/2" with one
 * entry per index, so a map stays ±1 per weight.) A verifier never replays more than R steps.
 *
 * Map entries (paper, Fig. 3): one uint32 each, bit 31 set = +1 (n_j += 1), bits 30..0 = flat index
 * j; ascending by index, no duplicates.
 */
import { WorkError } from '../errors.ts';

export const SIGN_BIT = 0x80000000;
export const INDEX_MASK = 0x7fffffff;

export function entryIndex(e: number): number {
  return e & INDEX_MASK;
}
export function entrySign(e: number): 1 | -1 {
  return (e & SIGN_BIT) !== 0 ? 1 : -1;
}
export function makeEntry(index: number, sign: 1 | -1): number {
  return (sign === 1 ? (index | SIGN_BIT) >>> 0 : index) >>> 0;
}

/** Checks a map is well formed for |M| parameters: ascending unique indices in range. */
export function assertMap(map: Uint32Array, parameterCount: number, maxEntries = parameterCount): void {
  if (map.length > maxEntries)
    throw new WorkError('MAP_TOO_LARGE', `${map.length} entries, at most ${maxEntries}`);
  let prev = -1;
  for (let i = 0; i < map.length; i++) {
    const j = map[i]! & INDEX_MASK;
    if (j >= parameterCount)
      throw new WorkError('MAP_OUT_OF_RANGE', `entry ${i}: index ${j} ≥ ${parameterCount}`, 'REJECT', {
        entry: i,
      });
    if (j <= prev)
      throw new WorkError('MAP_NOT_SORTED', `entry ${i}: index ${j} not above ${prev}`, 'REJECT', {
        entry: i,
      });
    prev = j;
  }
}

/** n += map. */
export function applyMap(n: Int32Array, map: Uint32Array): void {
  for (let i = 0; i < map.length; i++) {
    const e = map[i]!;
    n[e & INDEX_MASK]! += (e & SIGN_BIT) !== 0 ? 1 : -1;
  }
}

/**
 * r += g, then threshold at τ: returns the map and updates r in place (and n, when given).
 * `threshold` is τ (a local step) or τ/2 (a flush, which the caller follows with r.fill(0)).
 */
export function accumulateAndThreshold(
  r: Float32Array,
  g: Float32Array | null,
  tau: number,
  threshold = tau,
): Uint32Array {
  const out: number[] = [];
  for (let j = 0; j < r.length; j++) {
    const v = g === null ? r[j]! : Math.fround(r[j]! + g[j]!);
    if (v > threshold) {
      out.push((j | SIGN_BIT) >>> 0);
      r[j] = Math.fround(v - tau);
    } else if (v < -threshold) {
      out.push(j);
      r[j] = Math.fround(v + tau);
    } else {
      r[j] = v;
    }
  }
  return Uint32Array.from(out);
}

/**
 * `accumulateAndThreshold` over one block of r, bit for bit and without allocation: for
 * i < g.length, j = offset + i, v = fround(r_j + g_i); |v| > threshold enters the map (written into
 * `out` from index k, ascending) and r_j = v ∓ τ, else r_j = v. Returns the new k. Engines and the
 * miner's host residual use it block by block (one gradient block at a time, no concatenation).
 */
export function thresholdInto(
  r: Float32Array,
  offset: number,
  g: Float32Array,
  tau: number,
  threshold: number,
  out: Uint32Array,
  k: number,
): number {
  const neg = -threshold;
  const length = g.length;
  for (let i = 0; i < length; i++) {
    const j = offset + i;
    const v = Math.fround(r[j]! + g[i]!);
    if (v > threshold) {
      out[k++] = (j | SIGN_BIT) >>> 0;
      r[j] = v - tau; // a float32 difference rounded once, as Math.fround(v − τ)
    } else if (v < neg) {
      out[k++] = j;
      r[j] = v + tau;
    } else {
      r[j] = v;
    }
  }
  return k;
}

/** A segment flush: entries with |r_j| > τ/2 go into the map; r is then reset to zero. */
export function flushResidual(r: Float32Array, tau: number): Uint32Array {
  const map = accumulateAndThreshold(r, null, tau, tau / 2);
  r.fill(0);
  return map;
}

/** True for the last iteration of a segment of length R (iterations count from 0). */
export function isFlushIteration(iteration: number, segmentLength: number): boolean {
  return (iteration + 1) % segmentLength === 0;
}

/** First iteration of the segment holding `iteration`. */
export function segmentStart(iteration: number, segmentLength: number): number {
  return iteration - (iteration % segmentLength);
}

/**
 * One iteration's residual update, the reference for engines and verifiers: r += g and threshold
 * at τ, or in a flush iteration at τ/2 followed by r = 0. Returns the map; r is updated in place.
 */
export function residualStep(r: Float32Array, g: Float32Array, tau: number, flush: boolean): Uint32Array {
  if (!flush) return accumulateAndThreshold(r, g, tau);
  const map = accumulateAndThreshold(r, g, tau, tau / 2);
  r.fill(0);
  return map;
}

/** Float weights of the lattice point n: w0 − u·n (float32, element-wise). */
export function weightsOf(w0: Float32Array, n: Int32Array, u: number): Float32Array {
  const w = new Float32Array(w0.length);
  for (let j = 0; j < w0.length; j++) w[j] = Math.fround(w0[j]! - Math.fround(u * n[j]!));
  return w;
}
